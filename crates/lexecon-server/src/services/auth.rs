//! `lexecon.v1.AuthService`. Secrets are returned only where the API says so (a new
//! session, a new API key, MFA enrollment) and never logged or ledgered; the engine
//! ledgers every change with its author.

use lexecon_auth::{NewApiKey, Session};
use lexecon_engine::LoginResult;
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use super::{Shared, authenticated, caller, status};
use crate::convert::{role_from_pb, role_to_pb, timestamp_from_pb, timestamp_to_pb};

/// The auth service.
#[derive(Debug, Clone)]
pub struct AuthSvc(pub Shared);

fn session_to_pb(s: &Session) -> pb::Session {
    pb::Session {
        token: s.token.expose().to_owned(),
        expires_at: Some(timestamp_to_pb(s.expires_at)),
        idle_timeout_secs: s.idle_timeout_secs,
    }
}

#[tonic::async_trait]
impl AuthService for AuthSvc {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.get_ref();
        match self
            .0
            .engine
            .login(&r.username, &r.password)
            .await
            .map_err(status)?
        {
            LoginResult::Session(s) => Ok(Response::new(pb::LoginResponse {
                session: Some(session_to_pb(&s)),
                mfa_required: false,
                mfa_challenge: String::new(),
            })),
            LoginResult::MfaRequired(challenge) => Ok(Response::new(pb::LoginResponse {
                session: None,
                mfa_required: true,
                mfa_challenge: challenge.expose().to_owned(),
            })),
        }
    }

    async fn verify_mfa(
        &self,
        request: Request<pb::VerifyMfaRequest>,
    ) -> Result<Response<pb::VerifyMfaResponse>, Status> {
        let r = request.get_ref();
        let session = self
            .0
            .engine
            .verify_mfa(&r.mfa_challenge, &r.code)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::VerifyMfaResponse {
            session: Some(session_to_pb(&session)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let who = authenticated(&request)?;
        let revoked = self
            .0
            .engine
            .logout(&who.caller, &who.bearer)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LogoutResponse { revoked }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let who = caller(&request)?;
        let principal = self.0.engine.who_am_i(&who).map_err(status)?;
        let Some(p) = principal else {
            return Err(Status::unauthenticated("WhoAmI needs a token"));
        };
        Ok(Response::new(pb::WhoAmIResponse {
            principal_kind: p.kind.as_str().to_owned(),
            name: p.name.clone(),
            role: role_to_pb(p.role) as i32,
            mfa_verified: p.mfa_verified,
            actors: p
                .actors
                .as_ref()
                .map(|b| b.patterns().to_vec())
                .unwrap_or_default(),
            llm_roles: p.llm_roles.to_vec(),
            principal: who.ledger_name(),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let role = role_from_pb(r.role)?;
        let (created, _) = self
            .0
            .engine
            .create_user(&who, &r.username, &r.password, role)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateUserResponse {
            user_id: created.user_id,
            mfa_required: created.mfa_required,
        }))
    }

    async fn enroll_mfa(
        &self,
        request: Request<pb::EnrollMfaRequest>,
    ) -> Result<Response<pb::EnrollMfaResponse>, Status> {
        let who = caller(&request)?;
        let e = self.0.engine.enroll_mfa(&who).await.map_err(status)?;
        Ok(Response::new(pb::EnrollMfaResponse {
            secret_base32: e.secret_base32.expose().to_owned(),
            otpauth_uri: e.otpauth_uri.expose().to_owned(),
            backup_codes: e
                .backup_codes
                .iter()
                .map(|c| c.expose().to_owned())
                .collect(),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let role = role_from_pb(r.role)?;
        let created = self
            .0
            .engine
            .create_api_key(
                &who,
                NewApiKey {
                    name: r.name,
                    role,
                    expires_at: r.expires_at.as_ref().map(timestamp_from_pb),
                    actors: r.actors,
                    llm_roles: r.llm_roles,
                    created_by: None,
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            key_id: created.key_id.clone(),
            api_key: created.api_key.expose().to_owned(),
            ledger_index: created.ledger_index,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let who = caller(&request)?;
        let (revoked, _) = self
            .0
            .engine
            .revoke_api_key(&who, &request.get_ref().key_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeApiKeyResponse { revoked }))
    }

    async fn set_api_key_actors(
        &self,
        request: Request<pb::SetApiKeyActorsRequest>,
    ) -> Result<Response<pb::SetApiKeyActorsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let (updated, ledger_index) = self
            .0
            .engine
            .set_api_key_actors(&who, &r.key_id, r.actors, r.llm_roles)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetApiKeyActorsResponse {
            updated,
            ledger_index,
        }))
    }

    async fn list_oidc_providers(
        &self,
        _request: Request<pb::ListOidcProvidersRequest>,
    ) -> Result<Response<pb::ListOidcProvidersResponse>, Status> {
        let providers = self
            .0
            .engine
            .oidc_providers()
            .into_iter()
            .map(|p| pb::OidcProvider {
                name: p.name,
                issuer: p.issuer,
                client_id: p.client_id,
            })
            .collect();
        Ok(Response::new(pb::ListOidcProvidersResponse { providers }))
    }

    async fn exchange_oidc_token(
        &self,
        request: Request<pb::ExchangeOidcTokenRequest>,
    ) -> Result<Response<pb::ExchangeOidcTokenResponse>, Status> {
        let r = request.get_ref();
        let nonce = (!r.nonce.is_empty()).then_some(r.nonce.as_str());
        let (session, role) = self
            .0
            .engine
            .exchange_oidc_token(&r.provider, &r.id_token, nonce)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ExchangeOidcTokenResponse {
            session: Some(session_to_pb(&session)),
            role: role_to_pb(role) as i32,
        }))
    }
}
