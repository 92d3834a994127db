// A real OpenID provider for ragstream's tests: `oidc-provider` (a certified
// implementation) with static clients and users, on a loopback port.
//
//   node provider.mjs            PORT, API_AUDIENCE, REDIRECT_URIS from the environment
//
// Besides the provider's own endpoints (discovery, JWKS, /auth, /token,
// /device/...), a few test-only endpoints under /admin/ (the process listens
// on 127.0.0.1 only):
//   POST /admin/rotate   a new signing key, first in the JWKS; the old ones stay published
//   POST /admin/retire   only the newest key stays published
//   POST /admin/redirect_uris  {uris}: the web client's redirect URIs besides REDIRECT_URIS
//   POST /admin/sign     {claims, key: "current"|"foreign"}: a JWT (a claim set to null is
//                        left out) signed by the
//                        provider's current key (or one it never published), for the
//                        refusals (another audience, another issuer, expired) to test
// It prints "oidc-provider listening on <issuer>" once it serves.
import http from 'node:http';
import crypto from 'node:crypto';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const PORT = Number(process.env.PORT || 0);
const HOST = '127.0.0.1';
const API_AUDIENCE = process.env.API_AUDIENCE || 'https://ragstream.test/api';
const REDIRECT_URIS = (process.env.REDIRECT_URIS || 'http://127.0.0.1/callback').split(',');
const WEB_SECRET = process.env.WEB_CLIENT_SECRET || 'web-client-secret-for-tests-only';
// Appended to usernames and tenant names, so runs sharing a database never meet.
const RUN = process.env.RUN_ID ? `-${process.env.RUN_ID}` : '';

// The test users: `sub` is the login typed at the provider's sign-in page.
const USERS = {
  alice: { email: 'alice@acme.test', tenant: `acme${RUN}`, groups: ['staff', 'rag-admins'] },
  bob: { email: 'bob@acme.test', tenant: `acme${RUN}`, groups: ['staff'] },
  carol: { email: 'carol@globex.test', tenant: `globex${RUN}`, groups: ['staff'] },
  erin: { email: 'erin@acme.test', tenant: `acme${RUN}`, groups: [] },
  // Group sync (tests/e2e/test_groups.py): their claims make acme's groups.
  grace: { email: 'grace@acme.test', tenant: `acme${RUN}`, groups: ['auditors', 'staff'] },
  heidi: { email: 'heidi@acme.test', tenant: `acme${RUN}`, groups: ['auditors'] },
  // A local account has his username first (tests/e2e/test_oidc.py).
  frank: { email: 'frank@globex.test', tenant: `globex${RUN}`, groups: [] },
  // No tenant claim: ragstream must refuse rather than guess.
  dave: { email: 'dave@nowhere.test', groups: [] },
};

function userClaims(sub) {
  const user = USERS[sub];
  if (!user) return undefined;
  return { sub, preferred_username: `${sub}${RUN}`, name: sub, ...user };
}

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

let keys = [await newKey()];
const foreignKey = await newKey();

const clients = [
  {
    // The web page: authorization code with PKCE, a confidential client.
    client_id: 'ragstream-web',
    client_secret: WEB_SECRET,
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    // `rag login --sso`: the device-code flow, a public client.
    client_id: 'ragstream-cli',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'none',
  },
  {
    // Another application of the same provider: its tokens are not ragstream's.
    client_id: 'other-app',
    client_secret: 'other-app-secret-for-tests-only',
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  },
];

function configuration() {
  return {
    clients,
    jwks: { keys },
    findAccount: async (_ctx, sub) => {
      const claims = userClaims(sub);
      return claims && { accountId: sub, claims: async () => claims };
    },
    claims: {
      openid: ['sub'],
      email: ['email'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
      tenant: ['tenant'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'tenant'],
    // The ID token carries the scopes' claims too (the access token is for the API).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API_AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== API_AUDIENCE) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: API_AUDIENCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // The access token (a JWT for the API) names the user's tenant and groups.
    extraTokenClaims: async (_ctx, token) => {
      const claims = token.accountId && userClaims(token.accountId);
      if (!claims) return undefined;
      const { tenant, groups, email, preferred_username: username } = claims;
      return { tenant, groups, email, preferred_username: username };
    },
    ttl: { IdToken: 600, AccessToken: 600, DeviceCode: 600, Session: 3600 },
  };
}

let issuer;
let provider;
let handler;

function build() {
  provider = new Provider(issuer, configuration());
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  handler = provider.callback();
}

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body ? JSON.parse(body) : {};
}

function send(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function sign({ claims, key = 'current', alg = 'RS256' }) {
  const jwk = key === 'foreign' ? foreignKey : keys[0];
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: issuer, iat: now, exp: now + 600, ...claims };
  // null: the claim left out altogether (a default included).
  for (const [name, value] of Object.entries(payload)) if (value === null) delete payload[name];
  const privateKey = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
    .sign(privateKey);
}

async function admin(req, res) {
  if (req.method !== 'POST') return send(res, 405, { error: 'POST only' });
  const body = await readJson(req);
  switch (req.url) {
    case '/admin/rotate':
      keys = [await newKey(), ...keys];
      build();
      return send(res, 200, { kid: keys[0].kid, kids: keys.map((k) => k.kid) });
    case '/admin/redirect_uris':
      // The web client's redirect URIs, once the test knows the gateway's address.
      clients[0].redirect_uris = [...REDIRECT_URIS, ...body.uris];
      build();
      return send(res, 200, { redirect_uris: clients[0].redirect_uris });
    case '/admin/retire':
      keys = [keys[0]];
      build();
      return send(res, 200, { kids: keys.map((k) => k.kid) });
    case '/admin/sign':
      return send(res, 200, { token: await sign(body) });
    default:
      return send(res, 404, { error: 'unknown admin endpoint' });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res).catch((err) => send(res, 500, { error: String(err) }));
    return;
  }
  handler(req, res);
});

server.listen(PORT, HOST, () => {
  issuer = `http://${HOST}:${server.address().port}`;
  build();
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
