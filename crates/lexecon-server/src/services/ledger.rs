//! `lexecon.v1.LedgerService`.

use lexecon_ledger::Entry;
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::ledger_service_server::LedgerService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::timestamp_to_pb;

/// The ledger service.
#[derive(Debug, Clone)]
pub struct LedgerSvc(pub Shared);

/// The proto form of an entry.
pub fn entry_to_pb(e: &Entry) -> pb::LedgerEntry {
    let leaf = e.decode_leaf().ok();
    let payload_json = match (&e.tombstone, e.payload_json()) {
        (Some(t), _) => serde_json::to_string(t).unwrap_or_default(),
        (None, Some(v)) => v.to_string(),
        (None, None) => String::new(),
    };
    pb::LedgerEntry {
        index: e.index,
        kind: leaf
            .as_ref()
            .map(|l| l.kind.to_string())
            .unwrap_or_default(),
        timestamp: leaf.as_ref().map(|l| timestamp_to_pb(l.timestamp)),
        payload_json,
        leaf: e.leaf.clone(),
        leaf_hash: e.leaf_hash.to_vec(),
        redacted: e.tombstone.is_some(),
    }
}

#[tonic::async_trait]
impl LedgerService for LedgerSvc {
    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let page = self
            .0
            .engine
            .ledger_entries(&who, r.from, r.limit, &r.kind)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetEntriesResponse {
            entries: page.entries.iter().map(entry_to_pb).collect(),
            next: page.next,
        }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        let who = caller(&request)?;
        let entry = self
            .0
            .engine
            .ledger_entry(&who, request.get_ref().index)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetEntryResponse {
            entry: Some(entry_to_pb(&entry)),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let who = caller(&request)?;
        let report = self.0.engine.verify_ledger(&who).await.map_err(status)?;
        Ok(Response::new(pb::VerifyResponse {
            valid: report.valid,
            entries: report.entries,
            checkpoints: report.checkpoints,
            first_bad_index: report.problem.as_ref().and_then(|p| p.index).unwrap_or(0),
            error: report.problem.map(|p| p.what).unwrap_or_default(),
            trusted_key_ring: report.trusted_key_ring,
            ledger_index: report.recorded_at_index.unwrap_or(0),
        }))
    }

    async fn redact(
        &self,
        request: Request<pb::RedactRequest>,
    ) -> Result<Response<pb::RedactResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let done = self
            .0
            .engine
            .redact_entry(&who, r.index, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RedactResponse {
            ledger_index: done.ledger_index,
            erased: done.erased,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let who = caller(&request)?;
        let cp = self.0.engine.checkpoint(&who).await.map_err(status)?;
        Ok(Response::new(pb::GetCheckpointResponse {
            note: cp.note,
            tree_size: cp.size,
            root_hash: cp.root.to_vec(),
            verifier_key: cp.verifier_key,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let p = self
            .0
            .engine
            .inclusion_proof(&who, r.index, r.tree_size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            index: p.index,
            tree_size: p.size,
            leaf_hash: p.leaf_hash.to_vec(),
            root_hash: p.root.to_vec(),
            proof: p.proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let p = self
            .0
            .engine
            .consistency_proof(&who, r.size1, r.size2)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            size1: p.size1,
            size2: p.size2,
            root1: p.root1.to_vec(),
            root2: p.root2.to_vec(),
            proof: p.proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}
