// node-oidc-provider as a real OpenID Connect provider for Latchkey's SSO
// tests: a confidential code-flow client whose redirect URIs the test
// gives, accounts the test gives, and an interaction endpoint that signs in
// the account named by `?account=` (the test plays the person), with the
// `amr` the test gives for that account. It prints `listening <issuer>`.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const clientId = process.env.CLIENT_ID || 'latchkey';
const clientSecret = process.env.CLIENT_SECRET;
const redirectUris = JSON.parse(process.env.REDIRECT_URIS || '[]');
// { "<accountId>": { "claims": {...}, "amr": ["pwd", "otp"] } }
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rs256', alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  claims: { acr: null, auth_time: null, openid: ['sub', 'amr'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  findAccount: async (ctx, id) => (accounts[id]
    ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id].claims }) }
    : undefined),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const accountId = String(ctx.query.account || '');
    if (!accounts[accountId]) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return;
    }
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    const result = {
      login: { accountId, amr: accounts[accountId].amr || ['pwd'] },
      consent: { grantId },
    };
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
    return;
  }
  await next();
});

server.on('request', provider.callback());
console.log(`listening ${issuer}`);
