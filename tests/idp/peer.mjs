// A real OpenID provider (panva/oidc-provider 9.13.3) for keystile's DCR tests (contracts/dcr-providers.md §4.1).
//
// Listens on 127.0.0.1:$PORT (0 = any free port); issuer http://127.0.0.1:<port>. Prints exactly one JSON line on
// stdout once it accepts connections: issuer, plain_iat, rotating_iat, api_audience, admin_client_id,
// admin_client_secret. Everything else the library prints goes to stderr.
//
// - RFC 7591 registration behind adapter-backed initial access tokens (IATs). `plain_iat` is a static, reusable IAT;
//   `rotating_iat` carries the policy `rotate-secret-on-put`, inherited by the registration access tokens (RATs) of
//   clients registered with it, which gives those clients a fresh client_secret on every RFC 7592 PUT.
// - RFC 7592 management with a new RAT on every PUT.
// - client_credentials; resource indicators: the API audience (default for dynamic clients) issues RS256 JWT access
//   tokens with scopes `read write`; `urn:keystile:dcr` (the admin client's default) issues opaque tokens of scope
//   `dcr`; anything else is `invalid_target`. Every token carries `cid` (= client_id) besides `sub` and `client_id`.
// - A static admin client (client_credentials, scope `dcr`). A live `dcr` client-credentials token of that client,
//   presented as the bearer of a registration request, is destroyed (single use) and replaced by a freshly minted
//   IAT, itself destroyed after the request: the "IAT minted by client credentials" model.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// oidc-provider prints notices with console.info (stdout); keep stdout for the one JSON line.
console.info = (...args) => console.error(...args);
const { default: Provider, errors } = await import('oidc-provider');

const API_AUDIENCE = 'https://api.keystile.test';
const DCR_RESOURCE = 'urn:keystile:dcr';
const ADMIN_CLIENT_ID = 'keystile-admin';
const ADMIN_CLIENT_SECRET = randomBytes(24).toString('base64url');
const ROTATE_ON_PUT = 'rotate-secret-on-put';

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: ADMIN_CLIENT_ID,
      client_secret: ADMIN_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'dcr',
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  jwks: { keys: [{ ...signingKey, kid: 'peer-rs256', alg: 'RS256', use: 'sig' }] },
  scopes: ['openid', 'offline_access', 'read', 'write', 'dcr'],
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    registration: {
      enabled: true,
      initialAccessToken: true,
      policies: {
        [ROTATE_ON_PUT]: (ctx, properties) => {
          if (ctx.method === 'PUT') {
            properties.client_secret = randomBytes(32).toString('base64url');
          }
        },
      },
    },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (client?.clientId === ADMIN_CLIENT_ID ? DCR_RESOURCE : API_AUDIENCE),
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        if (resourceIndicator === API_AUDIENCE) {
          return {
            scope: 'read write',
            audience: API_AUDIENCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        if (resourceIndicator === DCR_RESOURCE && client?.clientId === ADMIN_CLIENT_ID) {
          return { scope: 'dcr', audience: DCR_RESOURCE, accessTokenTTL: 300, accessTokenFormat: 'opaque' };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ cid: token.clientId }),
});

// "IAT minted by client credentials": swap a live admin `dcr` token for a fresh single-use IAT.
const registrationPath = new URL(`${issuer}/reg`).pathname;
provider.use(async (ctx, next) => {
  const auth = ctx.headers.authorization;
  if (ctx.method !== 'POST' || ctx.path !== registrationPath || !auth?.startsWith('Bearer ')) {
    await next();
    return;
  }
  const presented = auth.slice('Bearer '.length);
  const cc = await provider.ClientCredentials.find(presented);
  if (!cc || cc.clientId !== ADMIN_CLIENT_ID || !cc.scope?.split(' ').includes('dcr')) {
    await next();
    return;
  }
  await cc.destroy();
  const minted = await new provider.InitialAccessToken({}).save();
  ctx.req.headers.authorization = `Bearer ${minted}`;
  try {
    await next();
  } finally {
    const iat = await provider.InitialAccessToken.find(minted);
    await iat?.destroy();
  }
});

server.on('request', provider.callback());

const plainIat = await new provider.InitialAccessToken({}).save();
const rotatingIat = await new provider.InitialAccessToken({ policies: [ROTATE_ON_PUT] }).save();

process.stdout.write(
  `${JSON.stringify({
    issuer,
    plain_iat: plainIat,
    rotating_iat: rotatingIat,
    api_audience: API_AUDIENCE,
    admin_client_id: ADMIN_CLIENT_ID,
    admin_client_secret: ADMIN_CLIENT_SECRET,
  })}\n`,
);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// With EXIT_ON_STDIN_EOF=1 the peer also stops when its parent goes away (the pipe on stdin closes).
if (process.env.EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
