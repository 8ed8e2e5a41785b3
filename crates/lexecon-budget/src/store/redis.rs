//! The Redis store: budget counters and rate windows shared by every replica, each
//! operation one Lua script (one round trip, atomic on the server).
//!
//! Every key carries the hash tag `{budget}`, so all keys a script touches live in one
//! cluster slot. Layout under the prefix `P`:
//! - `P{budget}:spend:<period>:<scope>`: hash `spent`, `reserved`, `soft`, `over`;
//! - `P{budget}:wz:<scope>`: sorted set of reservation ids by time (the 60 s window);
//! - `P{budget}:wt:<scope>`: hash reservation id to tokens, plus `_sum`;
//! - `P{budget}:res:<id>`: hash of one reservation; `P{budget}:exp`: open ones by expiry.
//!
//! Lua numbers are doubles: exact for integers below 2^53, which bounds every amount
//! (`MAX_MICROS`), token count and microsecond timestamp used here.

use std::collections::HashMap;

use deadpool_redis::redis::{self, Script};
use lexecon_core::{ReservationId, Timestamp};

use super::{
    BoxFuture, BudgetStore, CLOSED_RETENTION_MICROS, EventKind, LimitKind, ReleaseReason,
    ReservationRecord, ReservationState, ReserveOutcome, ReserveRequest, ScopeUsage, SettleOutcome,
    StoreDenial, StoreError, StoreEvent,
};
use crate::period::Period;

const RESERVE: &str = r"
local id = ARGV[1]
local now = tonumber(ARGV[2])
local cost = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
local n = tonumber(ARGV[9])
local window = 60000000
local current = {}
local function hget_num(key, field)
  return tonumber(redis.call('HGET', key, field)) or 0
end
for i = 0, n - 1 do
  local spend, wz, wt = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local base = 11 + 5 * i
  local budget = tonumber(ARGV[base])
  local enforce = ARGV[base + 1] == '1'
  local rpm = tonumber(ARGV[base + 3])
  local tpm = tonumber(ARGV[base + 4])
  local h = redis.call('HMGET', spend, 'spent', 'reserved')
  local cur = (tonumber(h[1]) or 0) + (tonumber(h[2]) or 0)
  if budget >= 0 and enforce and cur + cost > budget then
    return {0, i, 1, cur, budget, -1}
  end
  if rpm >= 0 or tpm >= 0 then
    local old = redis.call('ZRANGEBYSCORE', wz, '-inf', now - window)
    if #old > 0 then
      local sub = 0
      for j = 1, #old, 1000 do
        local chunk = {}
        for k = j, math.min(j + 999, #old) do chunk[#chunk + 1] = old[k] end
        local vals = redis.call('HMGET', wt, unpack(chunk))
        for _, v in ipairs(vals) do sub = sub + (tonumber(v) or 0) end
        redis.call('HDEL', wt, unpack(chunk))
      end
      redis.call('ZREMRANGEBYSCORE', wz, '-inf', now - window)
      redis.call('HINCRBY', wt, '_sum', -sub)
    end
    local count = redis.call('ZCARD', wz)
    local sum = hget_num(wt, '_sum')
    if rpm >= 0 and count >= rpm then
      local retry = -1
      local e = redis.call('ZRANGE', wz, count - rpm, count - rpm, 'WITHSCORES')
      if e[2] then retry = math.max(tonumber(e[2]) + window - now, 0) end
      return {0, i, 2, count, rpm, retry}
    end
    if tpm >= 0 and sum + tokens > tpm then
      local retry = -1
      if tokens <= tpm then
        local entries = redis.call('ZRANGE', wz, 0, -1, 'WITHSCORES')
        local s = sum
        for j = 1, #entries, 2 do
          s = s - hget_num(wt, entries[j])
          if s + tokens <= tpm then
            retry = math.max(tonumber(entries[j + 1]) + window - now, 0)
            break
          end
        end
      end
      return {0, i, 3, sum, tpm, retry}
    end
  end
  current[i] = cur
end
local out = {1}
for i = 0, n - 1 do
  local spend, wz, wt = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local base = 11 + 5 * i
  local budget = tonumber(ARGV[base])
  local soft = tonumber(ARGV[base + 2])
  local rpm = tonumber(ARGV[base + 3])
  local tpm = tonumber(ARGV[base + 4])
  redis.call('HINCRBY', spend, 'reserved', cost)
  redis.call('EXPIRE', spend, 8640000)
  local after = current[i] + cost
  if soft >= 0 and after >= soft and redis.call('HSETNX', spend, 'soft', '1') == 1 then
    out[#out + 1] = i; out[#out + 1] = 1; out[#out + 1] = after
  end
  if budget >= 0 and after > budget and redis.call('HSETNX', spend, 'over', '1') == 1 then
    out[#out + 1] = i; out[#out + 1] = 2; out[#out + 1] = after
  end
  if rpm >= 0 or tpm >= 0 then
    redis.call('ZADD', wz, now, id)
    redis.call('HSET', wt, id, tokens)
    redis.call('HINCRBY', wt, '_sum', tokens)
    redis.call('PEXPIRE', wz, 120000)
    redis.call('PEXPIRE', wt, 120000)
  end
end
redis.call('HSET', KEYS[1], 'period', ARGV[6], 'scopes', ARGV[10], 'created', ARGV[2],
  'expires', ARGV[3], 'cost', ARGV[4], 'tokens', ARGV[5], 'pin', ARGV[7], 'pout', ARGV[8],
  'state', 'open')
redis.call('ZADD', KEYS[2], ARGV[3], id)
-- Even if no sweeper ever runs, the record goes an hour after it would have expired.
redis.call('PEXPIRE', KEYS[1], math.floor((tonumber(ARGV[3]) - now) / 1000) + 3600000)
return out
";

const SETTLE: &str = r"
local st = redis.call('HMGET', KEYS[1], 'state', 'charged', 'released', 'cost')
if not st[1] then return {-1, 0, 0} end
if st[1] == 'settled' then return {0, tonumber(st[2]), tonumber(st[3])} end
local charged = tonumber(ARGV[2])
local cost = tonumber(st[4])
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  local spend, wt = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  redis.call('HINCRBY', spend, 'spent', charged)
  if st[1] == 'open' then redis.call('HINCRBY', spend, 'reserved', -cost) end
  local old = redis.call('HGET', wt, ARGV[1])
  if old then
    redis.call('HSET', wt, ARGV[1], ARGV[3])
    redis.call('HINCRBY', wt, '_sum', tonumber(ARGV[3]) - tonumber(old))
  end
end
local released = 0
if st[1] == 'open' then released = math.max(cost - charged, 0) end
redis.call('HSET', KEYS[1], 'state', 'settled', 'charged', charged, 'released', released,
  'closed', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, charged, released}
";

const RELEASE: &str = r"
local st = redis.call('HMGET', KEYS[1], 'state', 'cost')
if st[1] ~= 'open' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local cost = tonumber(st[2])
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local spend, wt = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  redis.call('HINCRBY', spend, 'reserved', -cost)
  if ARGV[2] == '1' then
    local old = redis.call('HGET', wt, ARGV[1])
    if old then
      redis.call('HSET', wt, ARGV[1], 0)
      redis.call('HINCRBY', wt, '_sum', -tonumber(old))
    end
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'closed', ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
";

const USAGE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
local sum = 0
for _, id in ipairs(ids) do sum = sum + (tonumber(redis.call('HGET', KEYS[3], id)) or 0) end
return {tonumber(h[1]) or 0, tonumber(h[2]) or 0, #ids, sum}
";

/// Budget counters in Redis, shared by every replica.
pub struct RedisBudgetStore {
    pool: deadpool_redis::Pool,
    prefix: String,
    reserve: Script,
    settle: Script,
    release: Script,
    usage: Script,
}

impl std::fmt::Debug for RedisBudgetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudgetStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Redis(e.to_string())
}

fn opt(v: Option<u64>) -> i64 {
    v.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1)
}

impl RedisBudgetStore {
    /// A store on `pool` writing every key under `prefix` (e.g. `lexecon:`).
    pub fn new(pool: deadpool_redis::Pool, prefix: impl Into<String>) -> Self {
        RedisBudgetStore {
            pool,
            prefix: prefix.into(),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            release: Script::new(RELEASE),
            usage: Script::new(USAGE),
        }
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{{budget}}:{kind}:{rest}", self.prefix)
    }

    fn spend_key(&self, period: Period, scope: &str) -> String {
        self.key("spend", &format!("{period}:{scope}"))
    }

    fn res_key(&self, id: ReservationId) -> String {
        self.key("res", &id.to_string())
    }

    fn exp_key(&self) -> String {
        format!("{}{{budget}}:exp", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool.get().await.map_err(redis_err)
    }

    async fn reserve_now(&self, req: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
        let mut inv = self.reserve.prepare_invoke();
        inv.key(self.res_key(req.id)).key(self.exp_key());
        for s in &req.scopes {
            inv.key(self.spend_key(req.period, &s.scope))
                .key(self.key("wz", &s.scope))
                .key(self.key("wt", &s.scope));
        }
        let scopes: Vec<&str> = req.scopes.iter().map(|s| s.scope.as_str()).collect();
        inv.arg(req.id.to_string())
            .arg(req.now.unix_micros())
            .arg(req.expires_at.unix_micros())
            .arg(req.cost_micros)
            .arg(req.tokens)
            .arg(req.period.to_string())
            .arg(req.input_per_mtok_micros)
            .arg(req.output_per_mtok_micros)
            .arg(req.scopes.len())
            .arg(scopes.join("\n"));
        for s in &req.scopes {
            inv.arg(opt(s.budget_micros))
                .arg(u8::from(s.enforce_budget))
                .arg(opt(s.soft_micros))
                .arg(opt(s.rpm))
                .arg(opt(s.tpm));
        }
        let mut conn = self.conn().await?;
        let out: Vec<i64> = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
        let num = |i: usize| -> Result<i64, StoreError> {
            out.get(i)
                .copied()
                .ok_or_else(|| StoreError::Corrupt("short reply from the reserve script".into()))
        };
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        if num(0)? == 0 {
            let kind = match num(2)? {
                1 => LimitKind::Budget,
                2 => LimitKind::Rpm,
                _ => LimitKind::Tpm,
            };
            let retry = num(5)?;
            return Ok(ReserveOutcome::Denied(StoreDenial {
                scope_index: usize::try_from(num(1)?).unwrap_or(0),
                kind,
                current: unsigned(num(3)?),
                limit: unsigned(num(4)?),
                retry_after_micros: u64::try_from(retry).ok(),
            }));
        }
        let events = out
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(3)
            .filter_map(|c| match *c {
                [i, kind, current] => Some(StoreEvent {
                    scope_index: usize::try_from(i).ok()?,
                    kind: if kind == 1 {
                        EventKind::SoftLimit
                    } else {
                        EventKind::BudgetExceeded
                    },
                    current_micros: unsigned(current),
                }),
                _ => None,
            })
            .collect();
        Ok(ReserveOutcome::Reserved(events))
    }

    async fn reservation_now(
        &self,
        id: ReservationId,
    ) -> Result<Option<ReservationRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let map: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.res_key(id))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if map.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<&str, StoreError> {
            map.get(name)
                .map(String::as_str)
                .ok_or_else(|| StoreError::Corrupt(format!("reservation {id} lacks {name}")))
        };
        let number = |name: &str| -> Result<u64, StoreError> {
            field(name)?
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("reservation {id} field {name}")))
        };
        let time = |name: &str| -> Result<Timestamp, StoreError> {
            field(name)?
                .parse()
                .map(Timestamp::from_unix_micros)
                .map_err(|_| StoreError::Corrupt(format!("reservation {id} field {name}")))
        };
        let state = match field("state")? {
            "open" => ReservationState::Open,
            "settled" => ReservationState::Settled {
                charged_micros: number("charged")?,
                released_micros: number("released")?,
            },
            "released" => ReservationState::Released,
            "expired" => ReservationState::Expired,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "reservation {id} state {other:?}"
                )));
            }
        };
        Ok(Some(ReservationRecord {
            id,
            period: field("period")?
                .parse()
                .map_err(|e: crate::period::PeriodError| StoreError::Corrupt(e.to_string()))?,
            scopes: field("scopes")?.split('\n').map(str::to_owned).collect(),
            created_at: time("created")?,
            expires_at: time("expires")?,
            reserved_micros: number("cost")?,
            reserved_tokens: number("tokens")?,
            input_per_mtok_micros: number("pin")?,
            output_per_mtok_micros: number("pout")?,
            state,
        }))
    }

    fn closing_keys(&self, inv: &mut redis::ScriptInvocation<'_>, rec: &ReservationRecord) {
        inv.key(self.res_key(rec.id)).key(self.exp_key());
        for scope in &rec.scopes {
            inv.key(self.spend_key(rec.period, scope))
                .key(self.key("wt", scope));
        }
    }

    async fn settle_now(
        &self,
        rec: &ReservationRecord,
        charged: u64,
        tokens: u64,
        now: Timestamp,
    ) -> Result<SettleOutcome, StoreError> {
        let mut inv = self.settle.prepare_invoke();
        self.closing_keys(&mut inv, rec);
        inv.arg(rec.id.to_string())
            .arg(charged)
            .arg(tokens)
            .arg(now.unix_micros())
            .arg(CLOSED_RETENTION_MICROS / 1_000_000)
            .arg(rec.scopes.len());
        let mut conn = self.conn().await?;
        let out: (i64, u64, u64) = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
        match out {
            (-1, _, _) => Err(StoreError::Corrupt(format!(
                "reservation {} vanished",
                rec.id
            ))),
            (status, charged_micros, released_micros) => Ok(SettleOutcome {
                charged_micros,
                released_micros,
                newly_settled: status == 1,
            }),
        }
    }

    async fn release_now(
        &self,
        rec: &ReservationRecord,
        reason: ReleaseReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut inv = self.release.prepare_invoke();
        self.closing_keys(&mut inv, rec);
        let (zero_tokens, state) = match reason {
            ReleaseReason::Cancelled => (1, "released"),
            ReleaseReason::Expired => (0, "expired"),
        };
        inv.arg(rec.id.to_string())
            .arg(zero_tokens)
            .arg(state)
            .arg(CLOSED_RETENTION_MICROS / 1_000_000)
            .arg(rec.scopes.len())
            .arg(now.unix_micros());
        let mut conn = self.conn().await?;
        let released: i64 = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
        Ok(released == 1)
    }

    async fn expired_now(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<Vec<ReservationId>, StoreError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.exp_key())
            .arg("-inf")
            .arg(now.unix_micros())
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e: lexecon_core::IdError| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn usage_now(
        &self,
        scope: &str,
        period: Period,
        now: Timestamp,
    ) -> Result<ScopeUsage, StoreError> {
        let mut inv = self.usage.prepare_invoke();
        inv.key(self.spend_key(period, scope))
            .key(self.key("wz", scope))
            .key(self.key("wt", scope))
            .arg(now.unix_micros().saturating_sub(super::WINDOW_MICROS));
        let mut conn = self.conn().await?;
        let (spent, reserved, requests, tokens): (u64, u64, u64, u64) =
            inv.invoke_async(&mut conn).await.map_err(redis_err)?;
        Ok(ScopeUsage {
            spent_micros: spent,
            reserved_micros: reserved,
            requests_last_minute: requests,
            tokens_last_minute: tokens,
        })
    }
}

impl BudgetStore for RedisBudgetStore {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<ReserveOutcome, StoreError>> {
        Box::pin(self.reserve_now(req))
    }

    fn reservation(
        &self,
        id: ReservationId,
    ) -> BoxFuture<'_, Result<Option<ReservationRecord>, StoreError>> {
        Box::pin(self.reservation_now(id))
    }

    fn settle<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        charged_micros: u64,
        actual_tokens: u64,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<SettleOutcome, StoreError>> {
        Box::pin(self.settle_now(rec, charged_micros, actual_tokens, now))
    }

    fn release<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        reason: ReleaseReason,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.release_now(rec, reason, now))
    }

    fn expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<ReservationId>, StoreError>> {
        Box::pin(self.expired_now(now, max))
    }

    fn purge_closed(&self, _before: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>> {
        // Closed reservations carry a Redis TTL set when they close.
        Box::pin(std::future::ready(Ok(0)))
    }

    fn usage<'a>(
        &'a self,
        scope: &'a str,
        period: Period,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<ScopeUsage, StoreError>> {
        Box::pin(self.usage_now(scope, period, now))
    }
}
