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
// purpose. It prints `listening <url>`.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import * as samlify from 'samlify';
import * as validator from '@authenio/samlify-node-xmllint';

samlify.setSchemaValidator(validator);

// { "<account>": { nameId, nameIdFormat?, attributes?: {name: value}, authnContextClassRef? } }
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const key = readFileSync(new URL('./idp-key.pem', import.meta.url));
const cert = readFileSync(new URL('./idp-cert.pem', import.meta.url));
const PASSWORD = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
const RSA_SHA1 = 'http://www.w3.org/2000/09/xmldsig#rsa-sha1';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const idpFor = (alg) => samlify.IdentityProvider({
  entityID: `${base}/metadata`,
  privateKey: key,
  signingCert: cert,
  requestSignatureAlgorithm: alg === 'sha1' ? RSA_SHA1 : RSA_SHA256,
  wantAuthnRequestsSigned: false,
  nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
  singleSignOnService: [{
    Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    Location: `${base}/sso`,
  }],
  singleLogoutService: [{
    Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    Location: `${base}/slo`,
  }],
});

const xml = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
  .replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// The response samlify fills in: the default template of samlify's docs,
// with an AuthnStatement and one attribute per account attribute.
function template(account, values) {
  const attributes = Object.entries(account.attributes || {}).map(([name, value]) =>
    `<saml:Attribute Name="${xml(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">`
    + `<saml:AttributeValue xsi:type="xs:string">${xml(value)}</saml:AttributeValue></saml:Attribute>`).join('');
  return '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    + ` ID="${values.id}" Version="2.0" IssueInstant="${values.now}" Destination="${xml(values.acs)}" InResponseTo="${xml(values.requestId)}">`
    + `<saml:Issuer>${xml(values.issuer)}</saml:Issuer>`
    + '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
    + '<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    + ` ID="${values.assertionId}" Version="2.0" IssueInstant="${values.now}">`
    + `<saml:Issuer>${xml(values.issuer)}</saml:Issuer>`
    + `<saml:Subject><saml:NameID Format="${xml(account.nameIdFormat || 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified')}">${xml(account.nameId)}</saml:NameID>`
    + '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
    + `<saml:SubjectConfirmationData NotOnOrAfter="${values.later}" Recipient="${xml(values.acs)}" InResponseTo="${xml(values.requestId)}"/>`
    + '</saml:SubjectConfirmation></saml:Subject>'
    + `<saml:Conditions NotBefore="${values.now}" NotOnOrAfter="${values.later}">`
    + `<saml:AudienceRestriction><saml:Audience>${xml(values.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
    + `<saml:AuthnStatement AuthnInstant="${values.now}" SessionIndex="_${randomUUID()}">`
    + `<saml:AuthnContext><saml:AuthnContextClassRef>${xml(account.authnContextClassRef || PASSWORD)}</saml:AuthnContextClassRef></saml:AuthnContext>`
    + '</saml:AuthnStatement>'
    + (attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : '')
    + '</saml:Assertion></samlp:Response>';
}

async function sso(url) {
  const account = accounts[url.searchParams.get('account') || ''];
  if (!account) return [400, 'unknown account'];
  const request = url.searchParams.get('SAMLRequest');
  if (!request) return [400, 'no SAMLRequest'];
  // The SP is the request's Issuer, whose metadata is at that URL.
  const decoded = inflateRawSync(Buffer.from(request, 'base64')).toString('utf8');
  const issuer = /<saml:Issuer>([^<]+)<\/saml:Issuer>/.exec(decoded)?.[1];
  if (!issuer) return [400, 'the request names no issuer'];
  let metadata = await (await fetch(issuer)).text();
  const sign = url.searchParams.get('sign') || 'assertion';
  if (sign === 'response') {
    metadata = metadata.replace('WantAssertionsSigned="true"', 'WantAssertionsSigned="false"');
  }
  const sp = samlify.ServiceProvider({ metadata, wantMessageSigned: sign === 'both' });
  const idp = idpFor(url.searchParams.get('alg'));
  const query = Object.fromEntries(url.searchParams);
  const info = await idp.parseLoginRequest(sp, 'redirect', { query, octetString: '' });
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000);
  const values = {
    id: `_${randomUUID()}`,
    assertionId: `_${randomUUID()}`,
    now: now.toISOString(),
    later: later.toISOString(),
    acs: sp.entityMeta.getAssertionConsumerService('post'),
    requestId: info.extract.request.id,
    issuer: `${base}/metadata`,
    audience: sp.entityMeta.getEntityID(),
  };
  const answer = await idp.createLoginResponse(sp, info, 'post', { email: account.nameId }, {
    customTagReplacement: () => ({ id: values.id, context: template(account, values) }),
    relayState: url.searchParams.get('RelayState') || undefined,
  });
  return [200, JSON.stringify({
    acsUrl: answer.entityEndpoint,
    SAMLResponse: answer.context,
    RelayState: answer.relayState ?? null,
  }), 'application/json'];
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, base);
  let status = 404; let body = 'not found'; let type = 'text/plain';
  try {
    if (req.method === 'GET' && url.pathname === '/metadata') {
      [status, body, type] = [200, idpFor('sha256').getMetadata(), 'application/samlmetadata+xml'];
    } else if (req.method === 'GET' && url.pathname === '/sso') {
      [status, body, type = 'text/plain'] = await sso(url);
    }
  } catch (e) {
    console.error('saml idp:', e);
    [status, body] = [500, String(e?.message || e)];
  }
  res.writeHead(status, { 'content-type': type });
  res.end(body);
});

console.log(`listening ${base}`);
