//! Who posts a message: a logged-in member (access JWT) or an organization
//! API token (`hapi_…`). Authentication only; what each may post where is
//! `messages::post`'s business (a token: its own group only).

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, FromRequest, HttpRequest};

use super::{bearer, state, CurrentUser};
use crate::error::ApiError;
use crate::messages::Poster;
use crate::tokens::{self, TokenIdentity};

#[derive(Debug, Clone)]
pub enum CurrentPoster {
    User(CurrentUser),
    Token(TokenIdentity),
}

impl CurrentPoster {
    pub fn as_poster(&self) -> Poster<'_> {
        match self {
            CurrentPoster::User(user) => Poster::User(&user.id),
            CurrentPoster::Token(token) => Poster::Token { id: &token.id, group_id: &token.group_id },
        }
    }
}

impl FromRequest for CurrentPoster {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let token = bearer(req);
        if !token.as_deref().is_some_and(|t| t.starts_with(&format!("{}_", tokens::PREFIX))) {
            let user = CurrentUser::from_request(req, payload);
            return Box::pin(async move { user.await.map(CurrentPoster::User) });
        }
        let state = state(req);
        Box::pin(async move {
            let secret = token.ok_or(ApiError::Unauthenticated)?;
            let state = state?;
            let now = state.now_ms();
            state
                .tx(move |conn| tokens::authenticate(conn, &secret, now))
                .await?
                .map(CurrentPoster::Token)
                .ok_or(ApiError::Unauthenticated)
        })
    }
}
