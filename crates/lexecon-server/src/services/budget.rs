//! `lexecon.v1.BudgetService`.

use lexecon_budget::Denial;
use lexecon_engine::{AuthorizeInput, ErrorClass, LlmAuthorization};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::budget_service_server::BudgetService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::timestamp_to_pb;
use crate::metrics::ReasonLabel;

/// The budget service.
#[derive(Debug, Clone)]
pub struct BudgetSvc(pub Shared);

/// The proto form of a denial.
pub fn denial_to_pb(d: &Denial) -> pb::BudgetDenial {
    pb::BudgetDenial {
        reason: d.reason.as_str().to_owned(),
        scope: d.scope.clone(),
        limit_id: d.limit_id.clone(),
        current: d.current,
        limit: d.limit,
        retry_after_secs: d.retry_after.map_or(0, |r| r.as_secs().max(1)),
        message: d.message(),
    }
}

#[tonic::async_trait]
impl BudgetService for BudgetSvc {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let input = AuthorizeInput {
            actor: r.actor,
            model: r.model,
            user_id: r.user_id,
            roles: r.roles,
            estimated_input_tokens: r.estimated_input_tokens,
            max_output_tokens: r.max_output_tokens,
        };
        match self
            .0
            .engine
            .authorize_llm(&who, input)
            .await
            .map_err(status)?
        {
            LlmAuthorization::Allowed(a) => Ok(Response::new(pb::AuthorizeResponse {
                allowed: true,
                reservation_id: a.reservation_id.to_string(),
                reserved_micros: a.reserved_micros,
                expires_at: Some(timestamp_to_pb(a.expires_at)),
                denial: None,
                warnings: a
                    .warnings
                    .iter()
                    .map(lexecon_budget::SoftLimitEvent::message)
                    .collect(),
            })),
            LlmAuthorization::Denied(d) => {
                self.0
                    .metrics
                    .budget_denials
                    .get_or_create(&ReasonLabel {
                        reason: d.reason.as_str().to_owned(),
                    })
                    .inc();
                Ok(Response::new(pb::AuthorizeResponse {
                    allowed: false,
                    denial: Some(denial_to_pb(&d)),
                    ..Default::default()
                }))
            }
        }
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let s = self
            .0
            .engine
            .settle(&who, &r.reservation_id, r.input_tokens, r.output_tokens)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SettleResponse {
            charged_micros: s.charged_micros,
            released_micros: s.released_micros,
            newly_settled: s.newly_settled,
        }))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let who = caller(&request)?;
        let released = self
            .0
            .engine
            .release(&who, &request.get_ref().reservation_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse { released }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let who = caller(&request)?;
        let u = self
            .0
            .engine
            .usage(&who, &request.get_ref().scope)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetUsageResponse {
            scope: u.scope.to_string(),
            period: u.period.to_string(),
            spent_micros: u.spent_micros,
            reserved_micros: u.reserved_micros,
            requests_last_minute: u.requests_last_minute,
            tokens_last_minute: u.tokens_last_minute,
        }))
    }

    async fn get_limits(
        &self,
        request: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::GetLimitsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let config_toml = self
            .0
            .engine
            .limits(&who, &r.user_id, &r.roles)
            .map_err(status)?;
        Ok(Response::new(pb::GetLimitsResponse { config_toml }))
    }

    async fn update_limits(
        &self,
        request: Request<pb::UpdateLimitsRequest>,
    ) -> Result<Response<pb::UpdateLimitsResponse>, Status> {
        let who = caller(&request)?;
        match self
            .0
            .engine
            .update_limits(&who, &request.get_ref().config_toml)
            .await
        {
            Ok(()) => Ok(Response::new(pb::UpdateLimitsResponse {
                updated: true,
                error: String::new(),
            })),
            // A document that does not parse or validate is answered, not failed: the
            // error names the key, and the limits in force stay.
            Err(e) if e.class() == ErrorClass::InvalidArgument => {
                Ok(Response::new(pb::UpdateLimitsResponse {
                    updated: false,
                    error: e.to_string(),
                }))
            }
            Err(e) => Err(status(e)),
        }
    }
}
