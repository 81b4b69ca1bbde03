//! The OpenID Connect provider's protocol logic: discovery, and (as issues
//! land) authorization, tokens, userinfo and logout. No HTTP here: `web`
//! turns these outcomes into responses.

pub mod discovery;
