// samlify as a real SAML 2.0 identity provider for Latchkey's SSO tests,
// with libxml2's schema validation (@authenio/samlify-node-xmllint). The
// test plays the person and the browser: it sends the IdP Latchkey's
// HTTP-Redirect URL with `&account=<name>` appended (the AuthnRequest is
// unsigned, so nothing breaks), and gets back as JSON what the IdP's
// auto-post page would post to the ACS. The SP is whoever the request's
// Issuer names: its entity id is its metadata URL, fetched here.
// `&sign=assertion|response|both` picks what is signed (as an SP's
// metadata and settings would), `&alg=sha1` signs with RSA-SHA1.
// idp-key.pem / idp-cert.pem are a test-only key pair, committed on
// purpose: never trust them anywhere. It prints `listening <url>`.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import samlify from 'samlify'; // CommonJS: its getters (SamlLib) are on the default export
import * as validator from '@authenio/samlify-node-xmllint';

samlify.setSchemaValidator(validator);

// { "<account>": { nameId, nameIdFormat?, attributes?: {name: value}, authnContextClassRef? } }
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const key = readFileSync(new URL('./idp-key.pem', import.meta.url));
const cert = readFileSync(new URL('./idp-cert.pem', import.meta.url));
const UNSPECIFIED = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';
const PASSWORD = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
const BASIC = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
const ALGORITHMS = {
  sha256: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  sha1: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
};
const SIGN = ['assertion', 'response', 'both'];

// samlify's default LoginResponse template with an AuthnStatement in its
// `{AuthnStatement}` slot; samlify itself fills `{AttributeStatement}`
// from the template's `attributes` (each value's tag is `attr` + valueTag).
const { SamlLib } = samlify;
const RESPONSE = SamlLib.defaultLoginResponseTemplate.context.replace('{AuthnStatement}',
  '<saml:AuthnStatement AuthnInstant="{AuthnInstant}" SessionIndex="{SessionIndex}">'
  + '<saml:AuthnContext><saml:AuthnContextClassRef>{AuthnContextClassRef}</saml:AuthnContextClassRef></saml:AuthnContext>'
  + '</saml:AuthnStatement>');

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

// The IdP, signing with `alg`, answering with `account`'s attributes.
const idpFor = (alg = 'sha256', account = {}) => {
  const names = Object.keys(account.attributes || {});
  return samlify.IdentityProvider({
    entityID: `${base}/metadata`,
    privateKey: key,
    signingCert: cert,
    requestSignatureAlgorithm: ALGORITHMS[alg],
    wantAuthnRequestsSigned: false,
    nameIDFormat: [UNSPECIFIED],
    singleSignOnService: [{
      Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
      Location: `${base}/sso`,
    }],
    // Listed only because samlify warns without one; nothing serves it.
    singleLogoutService: [{
      Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
      Location: `${base}/slo`,
    }],
    loginResponseTemplate: {
      // No attributes, no (empty, schema-invalid) AttributeStatement.
      context: names.length ? RESPONSE : RESPONSE.replace('{AttributeStatement}', ''),
      // samlify puts `Name` into the XML as it is: escape it here.
      attributes: names.map((name, i) => ({
        name: name.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;'),
        nameFormat: BASIC,
        valueTag: `value${i}`,
        valueXsiType: 'xs:string',
      })),
    },
  });
};

// An error answered with its status (the rest are 500).
const fail = (status, message) => Object.assign(new Error(message), { status });

async function sso(url) {
  const account = accounts[url.searchParams.get('account') || ''];
  if (!account) throw fail(400, 'unknown account');
  const sign = url.searchParams.get('sign') || 'assertion';
  const alg = url.searchParams.get('alg') || 'sha256';
  if (!SIGN.includes(sign) || !ALGORITHMS[alg]) throw fail(400, 'sign or alg is not one of those known');
  const request = url.searchParams.get('SAMLRequest');
  if (!request) throw fail(400, 'no SAMLRequest');

  // The SP is the request's Issuer, whose metadata is at that URL.
  let issuer;
  try {
    const decoded = inflateRawSync(Buffer.from(request, 'base64')).toString('utf8');
    issuer = samlify.Extractor.extract(decoded, [
      { key: 'issuer', localPath: ['AuthnRequest', 'Issuer'], attributes: [] },
    ]).issuer;
  } catch (e) {
    throw fail(400, `the SAMLRequest does not decode: ${e.message || e}`);
  }
  if (!issuer) throw fail(400, 'the request names no issuer');
  const got = await fetch(issuer).catch((e) => {
    throw fail(502, `the SP metadata at ${issuer}: ${e.cause?.message || e.message}`);
  });
  if (!got.ok) throw fail(502, `the SP metadata at ${issuer}: HTTP ${got.status}`);
  let metadata = await got.text();
  // What is signed, as samlify decides it: the assertion if the SP's
  // metadata wants it, the message if the SP's settings want it or if the
  // assertion is not signed.
  if (sign === 'response') {
    metadata = metadata.replace('WantAssertionsSigned="true"', 'WantAssertionsSigned="false"');
  }
  const sp = samlify.ServiceProvider({ metadata, wantMessageSigned: sign === 'both' });
  const idp = idpFor(alg, account);

  // samlify decodes and checks the request against the schema.
  const query = Object.fromEntries(url.searchParams);
  let info;
  try {
    info = await idp.parseLoginRequest(sp, 'redirect', { query, octetString: '' });
  } catch (e) {
    throw fail(400, `samlify refuses the request: ${e.message || e}`);
  }

  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000);
  const acs = sp.entityMeta.getAssertionConsumerService('post');
  const id = idp.entitySetting.generateID();
  const values = {
    ID: id,
    AssertionID: idp.entitySetting.generateID(),
    Destination: acs,
    Audience: sp.entityMeta.getEntityID(),
    SubjectRecipient: acs,
    Issuer: idp.entityMeta.getEntityID(),
    IssueInstant: now.toISOString(),
    StatusCode: samlify.Constants.StatusCode.Success,
    ConditionsNotBefore: now.toISOString(),
    ConditionsNotOnOrAfter: later.toISOString(),
    SubjectConfirmationDataNotOnOrAfter: later.toISOString(),
    NameIDFormat: account.nameIdFormat || UNSPECIFIED,
    NameID: account.nameId,
    InResponseTo: info.extract.request.id,
    AuthnInstant: now.toISOString(),
    SessionIndex: `_${randomUUID()}`,
    AuthnContextClassRef: account.authnContextClassRef || PASSWORD,
    ...Object.fromEntries(Object.values(account.attributes || {}).map((v, i) => [`attrValue${i}`, v])),
  };
  const answer = await idp.createLoginResponse(sp, info, 'post', { email: account.nameId }, {
    customTagReplacement: (template) => ({ id, context: SamlLib.replaceTagsByValue(template, values) }),
    relayState: url.searchParams.get('RelayState') || undefined,
  });
  return JSON.stringify({
    acsUrl: answer.entityEndpoint,
    SAMLResponse: answer.context,
    RelayState: answer.relayState ?? null,
  });
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, base);
  let status = 200; let body; let type;
  try {
    if (req.method === 'GET' && url.pathname === '/metadata') {
      [body, type] = [idpFor().getMetadata(), 'application/samlmetadata+xml'];
    } else if (req.method === 'GET' && url.pathname === '/sso') {
      [body, type] = [await sso(url), 'application/json'];
    } else {
      throw fail(404, 'not found');
    }
  } catch (e) {
    console.error('saml idp:', e.status ? e.message : e);
    [status, body, type] = [e.status || 500, String(e.message || e), 'text/plain'];
  }
  res.writeHead(status, { 'content-type': type });
  res.end(body);
});

console.log(`listening ${base}`);
