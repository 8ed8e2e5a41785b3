//! `lexecon.v1.AuthService`. Secrets are returned only where the API says so (a new
//! session, a new API key, MFA enrollment) and never logged or ledgered.

use lexecon_auth::{AuthError, LoginOutcome, Role, Session};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::auth_service_server::AuthService;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{Shared, caller};
use crate::convert::timestamp_to_pb;

/// The auth service.
#[derive(Debug, Clone)]
pub struct AuthSvc(pub Shared);

fn auth_status(err: AuthError) -> Status {
    if err.is_unauthenticated() {
        Status::unauthenticated(err.to_string())
    } else if err.is_permission_denied() {
        Status::permission_denied(err.to_string())
    } else if err.is_invalid_argument() {
        Status::invalid_argument(err.to_string())
    } else if err.is_already_exists() {
        Status::already_exists(err.to_string())
    } else if err.is_not_found() {
        Status::not_found(err.to_string())
    } else {
        tracing::error!(error = %err, "auth store failed");
        Status::unavailable("authentication is unavailable; try again")
    }
}

fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Viewer => pb::Role::Viewer,
        Role::Auditor => pb::Role::Auditor,
        Role::ComplianceOfficer => pb::Role::ComplianceOfficer,
        Role::Admin => pb::Role::Admin,
        Role::Agent => pb::Role::Agent,
    }
}

fn role_from_pb(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Viewer) => Ok(Role::Viewer),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        Ok(pb::Role::ComplianceOfficer) => Ok(Role::ComplianceOfficer),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        _ => Err(Status::invalid_argument(format!(
            "role {value} is not a role; use ROLE_VIEWER, _AUDITOR, _COMPLIANCE_OFFICER, _ADMIN or _AGENT"
        ))),
    }
}

fn session_to_pb(s: &Session) -> pb::Session {
    pb::Session {
        token: s.token.expose().to_owned(),
        expires_at: Some(timestamp_to_pb(s.expires_at)),
        idle_timeout_secs: s.idle_timeout_secs,
    }
}

impl AuthSvc {
    async fn audit(&self, payload: serde_json::Value) {
        if let Err(e) = self.0.engine.record_auth_event(payload).await {
            tracing::error!(error = %e, "recording an auth event failed");
        }
    }
}

#[tonic::async_trait]
impl AuthService for AuthSvc {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.get_ref();
        let outcome = self.0.engine.auth().login(&r.username, &r.password).await;
        let username: String = r.username.chars().take(64).collect();
        match outcome {
            Ok(LoginOutcome::Session(s)) => {
                self.audit(json!({"event": "login", "username": username, "mfa": false}))
                    .await;
                Ok(Response::new(pb::LoginResponse {
                    session: Some(session_to_pb(&s)),
                    mfa_required: false,
                    mfa_challenge: String::new(),
                }))
            }
            Ok(LoginOutcome::MfaRequired { challenge }) => Ok(Response::new(pb::LoginResponse {
                session: None,
                mfa_required: true,
                mfa_challenge: challenge.expose().to_owned(),
            })),
            Err(e) => {
                if e.is_unauthenticated() {
                    self.audit(json!({"event": "login_failed", "username": username}))
                        .await;
                }
                Err(auth_status(e))
            }
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
            .auth()
            .verify_mfa(&r.mfa_challenge, &r.code)
            .await
            .map_err(auth_status)?;
        self.audit(json!({"event": "login", "mfa": true})).await;
        Ok(Response::new(pb::VerifyMfaResponse {
            session: Some(session_to_pb(&session)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let who = caller(&request)?;
        let revoked = self
            .0
            .engine
            .auth()
            .logout(&who.bearer)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::LogoutResponse { revoked }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let who = caller(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            principal_kind: who.kind.to_owned(),
            name: who.name.clone(),
            role: role_to_pb(who.role) as i32,
            mfa_verified: who.mfa_verified,
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let role = role_from_pb(r.role)?;
        let created = self
            .0
            .engine
            .auth()
            .create_user(&r.username, &r.password, role)
            .await
            .map_err(auth_status)?;
        self.audit(json!({"event": "user_created", "user_id": created.user_id, "username": r.username, "role": role.to_string(), "by": who.name})).await;
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
        let e = self
            .0
            .engine
            .auth()
            .enroll_mfa(&who.principal())
            .await
            .map_err(auth_status)?;
        self.audit(json!({"event": "mfa_enrolled", "user_id": who.id}))
            .await;
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
        let r = request.get_ref();
        let role = role_from_pb(r.role)?;
        let expires = r.expires_at.as_ref().map(|t| {
            lexecon_core::Timestamp::from_unix_micros(
                t.seconds
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(t.nanos / 1_000)),
            )
        });
        let created = self
            .0
            .engine
            .auth()
            .create_api_key(&r.name, role, expires)
            .await
            .map_err(auth_status)?;
        self.audit(json!({"event": "api_key_created", "key_id": created.key_id, "name": r.name, "role": role.to_string(), "by": who.name})).await;
        Ok(Response::new(pb::CreateApiKeyResponse {
            key_id: created.key_id.clone(),
            api_key: created.api_key.expose().to_owned(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let who = caller(&request)?;
        let key_id = &request.get_ref().key_id;
        let revoked = self
            .0
            .engine
            .auth()
            .revoke_api_key(key_id)
            .await
            .map_err(auth_status)?;
        if revoked {
            self.audit(json!({"event": "api_key_revoked", "key_id": key_id, "by": who.name}))
                .await;
        }
        Ok(Response::new(pb::RevokeApiKeyResponse { revoked }))
    }

    async fn list_oidc_providers(
        &self,
        _request: Request<pb::ListOidcProvidersRequest>,
    ) -> Result<Response<pb::ListOidcProvidersResponse>, Status> {
        let providers = self
            .0
            .engine
            .auth()
            .oidc_providers()
            .map(|p| pb::OidcProvider {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
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
            .auth()
            .exchange_oidc_token(&r.provider, &r.id_token, nonce)
            .await
            .map_err(auth_status)?;
        self.audit(
            json!({"event": "oidc_login", "provider": r.provider, "role": role.to_string()}),
        )
        .await;
        Ok(Response::new(pb::ExchangeOidcTokenResponse {
            session: Some(session_to_pb(&session)),
            role: role_to_pb(role) as i32,
        }))
    }
}
