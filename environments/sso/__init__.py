"""Single sign-on with OpenID Connect (docs/sso.md): the sign-in and sign-out views, the
user an identity maps to, and the roles the provider's groups give at each sign-in."""
