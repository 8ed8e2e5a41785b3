//! `lexecon.v1.RiskService`.

use lexecon_proto::v1 as pb;
use lexecon_proto::v1::risk_service_server::RiskService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{action_input, risk_level_to_pb};

/// The risk service.
#[derive(Debug, Clone)]
pub struct RiskSvc(pub Shared);

/// The proto form of one dimension.
pub fn dimension_to_pb(d: &lexecon_risk::DimensionScore) -> pb::RiskDimension {
    pb::RiskDimension {
        score: u32::from(d.score),
        factors: d
            .factors
            .iter()
            .map(|f| pb::RiskFactor {
                rule_id: f.rule_id.to_string(),
                points: u32::from(f.points),
                description: f.description.to_string(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl RiskService for RiskSvc {
    async fn assess(
        &self,
        request: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let input = action_input(
            &r.actor,
            &r.proposed_action,
            &r.tool,
            "",
            &r.data_classes,
            r.risk_level,
            0,
            &r.context,
            r.llm.as_ref(),
        )?;
        let a = self.0.engine.assess(&who, &input).map_err(status)?;
        let d = &a.dimensions;
        Ok(Response::new(pb::AssessResponse {
            risk_score: u32::from(a.score),
            level: risk_level_to_pb(a.level) as i32,
            dimensions: Some(pb::RiskDimensions {
                security: Some(dimension_to_pb(&d.security)),
                privacy: Some(dimension_to_pb(&d.privacy)),
                compliance: Some(dimension_to_pb(&d.compliance)),
                operational: Some(dimension_to_pb(&d.operational)),
                reputational: Some(dimension_to_pb(&d.reputational)),
                financial: Some(dimension_to_pb(&d.financial)),
            }),
            escalate: a.escalate,
        }))
    }
}
