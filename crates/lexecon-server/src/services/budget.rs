//! `lexecon.v1.BudgetService`.

use lexecon_budget::{BudgetConfig, BudgetError, Denial, Scope};
use lexecon_core::{LlmUsage, ReservationId};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::budget_service_server::BudgetService;
use tonic::{Request, Response, Status};

use super::{Shared, caller};
use crate::convert::timestamp_to_pb;
use crate::metrics::ReasonLabel;

/// The budget service.
#[derive(Debug, Clone)]
pub struct BudgetSvc(pub Shared);

fn budget_status(err: BudgetError) -> Status {
    match err {
        BudgetError::UnknownReservation(_) => Status::not_found(err.to_string()),
        BudgetError::InvalidRequest(_) | BudgetError::InvalidScope(_) => {
            Status::invalid_argument(err.to_string())
        }
        other => {
            tracing::error!(error = %other, "budget store failed");
            Status::unavailable(format!("budget: {other}"))
        }
    }
}

fn reservation_id(s: &str) -> Result<ReservationId, Status> {
    s.parse()
        .map_err(|e| Status::invalid_argument(format!("reservation_id: {e}")))
}

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

const MAX_CONFIG_BYTES: usize = 1024 * 1024;

#[tonic::async_trait]
impl BudgetService for BudgetSvc {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let r = request.into_inner();
        if r.model.is_empty() {
            return Err(Status::invalid_argument("model must not be empty"));
        }
        let usage = LlmUsage {
            model: r.model,
            user_id: (!r.user_id.is_empty()).then_some(r.user_id),
            roles: r.roles,
            estimated_input_tokens: r.estimated_input_tokens,
            max_output_tokens: r.max_output_tokens,
        };
        match self.0.engine.budget().authorize(&usage).await {
            Ok(a) => Ok(Response::new(pb::AuthorizeResponse {
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
            Err(BudgetError::Denied(d)) => {
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
            Err(other) => Err(budget_status(other)),
        }
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let r = request.get_ref();
        let id = reservation_id(&r.reservation_id)?;
        let s = self
            .0
            .engine
            .budget()
            .settle(id, r.input_tokens, r.output_tokens)
            .await
            .map_err(budget_status)?;
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
        let id = reservation_id(&request.get_ref().reservation_id)?;
        let released = self
            .0
            .engine
            .budget()
            .release(id)
            .await
            .map_err(budget_status)?;
        Ok(Response::new(pb::ReleaseResponse { released }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let who = caller(&request)?;
        let scope = match request.get_ref().scope.as_str() {
            "" => Scope::User(who.name.clone()),
            s => s.parse::<Scope>().map_err(budget_status)?,
        };
        let u = self
            .0
            .engine
            .budget()
            .usage(&scope)
            .await
            .map_err(budget_status)?;
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
        let r = request.get_ref();
        let user = (!r.user_id.is_empty()).then_some(r.user_id.as_str());
        let limits = self.0.engine.budget().effective_limits(user, &r.roles);
        let mut table = toml::Table::new();
        for (scope, l) in limits {
            let value = toml::Value::try_from(&l).map_err(|e| Status::internal(e.to_string()))?;
            table.insert(scope.to_string(), value);
        }
        Ok(Response::new(pb::GetLimitsResponse {
            config_toml: toml::to_string(&table).unwrap_or_default(),
        }))
    }

    async fn update_limits(
        &self,
        request: Request<pb::UpdateLimitsRequest>,
    ) -> Result<Response<pb::UpdateLimitsResponse>, Status> {
        let source = &request.get_ref().config_toml;
        if source.len() > MAX_CONFIG_BYTES {
            return Err(Status::invalid_argument("config_toml is larger than 1 MiB"));
        }
        let config: BudgetConfig = match toml::from_str(source) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Response::new(pb::UpdateLimitsResponse {
                    updated: false,
                    error: format!("budget.{e}"),
                }));
            }
        };
        match self.0.engine.reload_budget(config).await {
            Ok(()) => Ok(Response::new(pb::UpdateLimitsResponse {
                updated: true,
                error: String::new(),
            })),
            Err(e) => Ok(Response::new(pb::UpdateLimitsResponse {
                updated: false,
                error: e.to_string(),
            })),
        }
    }
}
