// A real OpenID provider for the single sign-on tests: the OpenID-certified
// `oidc-provider` with its own login page (devInteractions: any password, the login is
// the account's `sub`). Started by tests/oidc_provider.py with one argument, a JSON file:
// {issuer, port, client, jwks, accounts_file}. The accounts file is read at every
// sign-in, so a test changes someone's groups at the provider by rewriting it.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = () => JSON.parse(fs.readFileSync(config.accounts_file, 'utf8'));

const provider = new Provider(config.issuer, {
  clients: [{
    ...config.client,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: config.jwks,
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The groups (and the other claims) in the ID token itself, as Entra ID and Keycloak
  // put them there, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['tests-only-cookie-key'] },
  async findAccount(ctx, sub) {
    const account = accounts()[sub];
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { sub, ...account }; } };
  },
});
provider.proxy = false;
// Entra ID and Keycloak give a refresh token to a client that asks for `offline_access`;
// oidc-provider (as OpenID Connect Core allows) only with prompt=consent, which the portal
// does not send (Entra would show its consent page at every sign-in). So it is added here.
provider.use(async (ctx, next) => {
  if (ctx.path === '/auth' && ctx.query.scope?.split(' ').includes('offline_access')) {
    ctx.query = { ...ctx.query, prompt: 'consent' };
  }
  await next();
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${config.issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
