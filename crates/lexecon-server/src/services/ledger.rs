//! `lexecon.v1.LedgerService`.

use lexecon_ledger::Entry;
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::ledger_service_server::LedgerService;
use tonic::{Request, Response, Status};

use super::Shared;
use crate::convert::timestamp_to_pb;

/// The ledger service.
#[derive(Debug, Clone)]
pub struct LedgerSvc(pub Shared);

fn ledger_status(err: lexecon_ledger::LedgerError) -> Status {
    let msg = err.to_string();
    if msg.contains("out of range") || msg.contains("beyond") || msg.contains("must be") {
        Status::invalid_argument(msg)
    } else {
        tracing::error!(error = %msg, "ledger read failed");
        Status::unavailable(format!("ledger: {msg}"))
    }
}

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
        let r = request.get_ref();
        let limit = match r.limit {
            0 => 100,
            n if n > 1000 => return Err(Status::invalid_argument("limit must be at most 1000")),
            n => u64::from(n),
        };
        let ledger = self.0.engine.ledger();
        let entries = ledger.entries(r.from, limit).await.map_err(ledger_status)?;
        let next = entries.last().map_or(r.from, |e| e.index + 1);
        let entries = entries
            .iter()
            .map(entry_to_pb)
            .filter(|e| r.kind.is_empty() || e.kind == r.kind)
            .collect();
        Ok(Response::new(pb::GetEntriesResponse { entries, next }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        let index = request.get_ref().index;
        match self
            .0
            .engine
            .ledger()
            .entry(index)
            .await
            .map_err(ledger_status)?
        {
            Some(e) => Ok(Response::new(pb::GetEntryResponse {
                entry: Some(entry_to_pb(&e)),
            })),
            None => Err(Status::not_found(format!(
                "no ledger entry at index {index}"
            ))),
        }
    }

    async fn verify(
        &self,
        _request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let ledger = self.0.engine.ledger();
        let options = lexecon_ledger::VerifyOptions {
            verifiers: vec![ledger.verifier().clone()],
            ..Default::default()
        };
        let report = lexecon_ledger::verify(ledger.store().clone(), &options)
            .await
            .map_err(ledger_status)?;
        Ok(Response::new(pb::VerifyResponse {
            valid: report.valid,
            entries: report.entries,
            checkpoints: report.checkpoints,
            first_bad_index: report.problem.as_ref().and_then(|p| p.index).unwrap_or(0),
            error: report.problem.map(|p| p.what).unwrap_or_default(),
        }))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let ledger = self.0.engine.ledger();
        let cp = match ledger.latest_checkpoint().await.map_err(ledger_status)? {
            Some(cp) => cp,
            None => ledger.checkpoint().await.map_err(ledger_status)?,
        };
        Ok(Response::new(pb::GetCheckpointResponse {
            note: cp.note.clone(),
            tree_size: cp.checkpoint.size,
            root_hash: cp.checkpoint.root.to_vec(),
            verifier_key: ledger.verifier().vkey(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let r = request.get_ref();
        let ledger = self.0.engine.ledger();
        let size = if r.tree_size == 0 {
            ledger.tree_size().await.map_err(ledger_status)?
        } else {
            r.tree_size
        };
        if r.index >= size {
            return Err(Status::invalid_argument(format!(
                "index {} is not below tree_size {size}",
                r.index
            )));
        }
        let p = ledger
            .inclusion_proof(r.index, Some(size))
            .await
            .map_err(ledger_status)?;
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
        let r = request.get_ref();
        let ledger = self.0.engine.ledger();
        let size2 = if r.size2 == 0 {
            ledger.tree_size().await.map_err(ledger_status)?
        } else {
            r.size2
        };
        if r.size1 == 0 || r.size1 > size2 {
            return Err(Status::invalid_argument(format!(
                "size1 must be between 1 and size2 ({size2}), got {}",
                r.size1
            )));
        }
        let p = ledger
            .consistency_proof(r.size1, size2)
            .await
            .map_err(ledger_status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            size1: p.size1,
            size2: p.size2,
            root1: p.root1.to_vec(),
            root2: p.root2.to_vec(),
            proof: p.proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}
