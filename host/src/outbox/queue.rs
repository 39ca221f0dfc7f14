//! The outbox's SQL queue: an action is written in the same transaction as its decision,
//! claimed before each attempt, finished with its result, and listed for the API. The
//! rails that need the history (cooldown, rate limit) are answered here, in the transaction
//! that writes the action.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::rails::{self, Choice, Skip};
use super::{Action, Decision, DecisionQuery, Outbox, Payload, Planned, Queued, RetryError, state};
use crate::model::units::PromDuration;

const ACTION_COLUMNS: &str = "id, receiver, group_key, incident_id, target, idempotency_key, \
     state, attempts, created_at, next_at, updated_at, last_error, payload";

fn action_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Action> {
    Ok(Action {
        id: r.get(0)?,
        receiver: r.get(1)?,
        group_key: r.get(2)?,
        incident_id: r.get(3)?,
        target: r.get(4)?,
        idempotency_key: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        next_at: r.get(9)?,
        updated_at: r.get(10)?,
        last_error: r.get(11)?,
        payload: r.get(12)?,
    })
}

impl Outbox {
    pub(crate) fn record(
        &self,
        c: &rusqlite::Connection,
        at: i64,
        (receiver, incident, target): (&str, &str, &str),
        action_id: Option<i64>,
        decision: &str,
        reason: &str,
    ) -> rusqlite::Result<()> {
        match decision {
            "skipped" | "ambiguous" | "dead" | "failed" => {
                tracing::warn!(receiver, incident, target, decision, "{reason}")
            }
            _ => tracing::info!(receiver, incident, target, decision, "{reason}"),
        }
        self.metrics.inc(
            "faultline_recovery_decisions_total",
            &[("receiver", receiver), ("decision", decision)],
        );
        c.execute(
            "INSERT INTO decisions (at, receiver, incident_id, target, action_id, decision, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![at, receiver, incident, target, action_id, decision, reason],
        )
        .map(|_| ())
    }

    /// Applies the receiver's rails to an incident and, if the action may run, writes it to
    /// the outbox through `tx`, the transaction of a dispatcher pass. Returns the action
    /// written (dry-run actions included), `None` when the rails skipped it or it was
    /// already written, and an error when the action could not be written: then the caller
    /// rolls the pass back and plans it again. Once `tx` commits, hand what was written to
    /// [`Outbox::queued`].
    pub fn plan(
        &self,
        tx: &rusqlite::Connection,
        p: Planned<'_>,
        now: i64,
    ) -> rusqlite::Result<Option<Queued>> {
        let r = p.receiver;
        let rails = &r.rails;
        let incident = &p.incident.id;
        let ranking = p.ranking;
        let choice = rails::choose(
            rails,
            r.send_resolved,
            p.incident,
            &ranking.suspects,
            ranking.min_margin,
        );
        let Choice {
            target,
            suspects,
            ambiguous,
        } = match choice {
            Ok(choice) => choice,
            Err(Skip {
                decision,
                target,
                reason,
            }) => {
                let who = (r.name.as_str(), incident.as_str(), target.as_str());
                self.record(tx, now, who, None, decision, &reason)?;
                return Ok(None);
            }
        };
        let key = rails::idempotency_key(&r.name, &p.incident.group_key, p.alerts_key, &target);
        let payload = serde_json::to_string(&Payload {
            incident: p.incident.clone(),
            suspects,
            ambiguous,
        })
        .unwrap_or_default();
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM outbox WHERE idempotency_key = ?1",
                [&key],
                |row| row.get(0),
            )
            .optional()?;
        if exists.is_some() {
            // Already planned (a restart re-planned it): at most once in the outbox.
            return Ok(None);
        }
        let who = (r.name.as_str(), incident.as_str(), target.as_str());
        let counted = "('pending', 'done', 'dead', 'dry-run')";
        if let Some(cooldown) = rails.cooldown {
            let last: Option<i64> = tx
                .query_row(
                    &format!(
                        "SELECT MAX(created_at) FROM outbox WHERE receiver = ?1 AND target = ?2
                         AND state IN {counted}"
                    ),
                    params![r.name, target],
                    |row| row.get(0),
                )
                .optional()?
                .flatten();
            if let Some(last) = last.filter(|l| now - l < cooldown.0.as_millis() as i64) {
                let reason = format!(
                    "cooldown: the last action on {target} was {}s ago (cooldown {cooldown})",
                    (now - last) / 1000
                );
                self.record(tx, now, who, None, "skipped", &reason)?;
                return Ok(None);
            }
        }
        if let Some(limit) = rails.rate_limit {
            let n: u32 = tx.query_row(
                &format!(
                    "SELECT COUNT(*) FROM outbox WHERE receiver = ?1 AND target = ?2
                     AND created_at > ?3 AND state IN {counted}"
                ),
                params![r.name, target, now - limit.per.as_millis() as i64],
                |row| row.get(0),
            )?;
            if n >= limit.count {
                let reason = format!(
                    "rate limit: {n} actions on {target} in the last {} (at most {})",
                    PromDuration(limit.per),
                    limit.count
                );
                self.record(tx, now, who, None, "skipped", &reason)?;
                return Ok(None);
            }
        }
        let st = if rails.dry_run {
            state::DRY_RUN
        } else {
            state::PENDING
        };
        tx.execute(
            "INSERT INTO outbox (receiver, group_key, incident_id, target, idempotency_key,
                 payload, state, attempts, created_at, next_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?8)",
            params![
                r.name,
                p.incident.group_key,
                incident,
                target,
                key,
                payload,
                st,
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        if rails.dry_run {
            let reason = format!(
                "dry-run: would run {} ({}) on {target} for incident {incident} ({}); nothing done",
                r.name,
                r.plugin.name,
                p.incident.status.as_str()
            );
            self.record(tx, now, who, Some(id), "dry-run", &reason)?;
        } else {
            let reason = format!(
                "queued {} ({}) on {target}, idempotency key {key}",
                r.name, r.plugin.name
            );
            self.record(tx, now, who, Some(id), "queued", &reason)?;
        }
        Ok(Some(Queued { id, state: st }))
    }

    /// Counts the actions a committed pass wrote and wakes the delivery loop for them.
    pub fn queued(&self, written: &[Queued]) {
        for q in written {
            self.count(None, Some(q.state), 1);
        }
        if written.iter().any(|q| q.state == state::PENDING) {
            self.wake.notify_one();
        }
    }

    /// Actions in a state (all when `None`), newest first.
    pub fn actions(&self, state: Option<&str>, limit: usize) -> Vec<Action> {
        self.db
            .with(|c| {
                let mut st = c.prepare(&format!(
                    "SELECT {ACTION_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1)
                     ORDER BY id DESC LIMIT ?2"
                ))?;
                st.query_map(params![state, limit as i64], action_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            })
    }

    /// One action with its payload.
    pub fn action(&self, id: i64) -> Option<(Action, Payload)> {
        self.db
            .with(|c| {
                c.query_row(
                    &format!("SELECT {ACTION_COLUMNS} FROM outbox WHERE id = ?1"),
                    [id],
                    action_row,
                )
                .optional()
            })
            .ok()
            .flatten()
            .and_then(|a| {
                let p = serde_json::from_str(&a.payload).ok()?;
                Some((a, p))
            })
    }

    /// Recorded decisions, newest first.
    pub fn decisions(&self, q: &DecisionQuery) -> Vec<Decision> {
        self.db
            .with(|c| {
                let mut st = c.prepare(
                    "SELECT id, at, receiver, incident_id, target, action_id, decision, reason
                     FROM decisions WHERE (?1 IS NULL OR receiver = ?1)
                     AND (?2 IS NULL OR incident_id = ?2) AND (?3 IS NULL OR decision = ?3)
                     ORDER BY id DESC LIMIT ?4",
                )?;
                st.query_map(
                    params![
                        q.receiver,
                        q.incident,
                        q.decision,
                        q.limit.unwrap_or(1000) as i64
                    ],
                    |r| {
                        Ok(Decision {
                            id: r.get(0)?,
                            at: r.get(1)?,
                            receiver: r.get(2)?,
                            incident_id: r.get(3)?,
                            target: r.get(4)?,
                            action_id: r.get(5)?,
                            decision: r.get(6)?,
                            reason: r.get(7)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading decisions: {e}");
                Vec::new()
            })
    }

    /// Puts a dead-lettered action back in the queue, with a fresh attempt count (its
    /// idempotency key stays). Errors say why not.
    pub fn retry(&self, id: i64, now: i64) -> Result<Action, RetryError> {
        let res = self
            .db
            .with(|c| -> rusqlite::Result<Result<(), RetryError>> {
                let tx = c.unchecked_transaction()?;
                let row: Option<(String, String, String, String)> = tx
                    .query_row(
                        "SELECT state, receiver, incident_id, target FROM outbox WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((st, receiver, incident, target)) = row else {
                    return Ok(Err(RetryError::NotFound));
                };
                if st != state::DEAD {
                    return Ok(Err(RetryError::NotDead(st)));
                }
                tx.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?2,
                 next_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                self.record(
                    &tx,
                    now,
                    (&receiver, &incident, &target),
                    Some(id),
                    "retried",
                    "moved back from the dead-letter list by an operator",
                )?;
                tx.commit()?;
                Ok(Ok(()))
            });
        match res {
            Ok(Ok(())) => {
                self.count(Some(state::DEAD), Some(state::PENDING), 1);
                self.wake.notify_one();
                self.action(id).map(|(a, _)| a).ok_or(RetryError::NotFound)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(RetryError::Db(e.to_string())),
        }
    }

    /// For each receiver with actions due at `now`, since when the oldest has been due.
    pub(crate) fn due_since(&self, now: i64) -> Vec<(String, i64)> {
        self.db
            .with(|c| {
                let mut st = c.prepare_cached(
                    "SELECT receiver, MIN(next_at) FROM outbox
                     WHERE state = 'pending' AND next_at <= ?1 GROUP BY receiver",
                )?;
                st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            })
    }

    /// Actions due at `now`, oldest first, at most `per_receiver` of each receiver.
    pub(crate) fn due(&self, now: i64, per_receiver: usize) -> Vec<Action> {
        self.db
            .with(|c| {
                // Only the oldest unfinished action of a (receiver, target) is due: a later
                // one waits until it is done or dead, retries included. The earlier one is
                // looked up by target (SQLite would otherwise pick the index on state and
                // scan every pending action for each pending action).
                let mut st = c.prepare_cached(&format!(
                    "SELECT {ACTION_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER
                         (PARTITION BY receiver ORDER BY id) AS nth
                     FROM outbox o WHERE state = 'pending'
                     AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM outbox e
                         INDEXED BY outbox_target WHERE e.receiver = o.receiver AND e.target = o.target
                         AND e.state = 'pending' AND e.id < o.id))
                     WHERE nth <= ?2 ORDER BY id"
                ))?;
                st.query_map(params![now, per_receiver as i64], action_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            })
    }

    /// Whether the action is still as it was read: pending, with the same attempt count.
    /// The delivery loop reads due actions before the attempts it started have finished,
    /// so a row it read may already be done; only a row still as read is attempted.
    pub(crate) fn claim(&self, a: &Action) -> bool {
        self.db
            .with(|c| {
                c.execute(
                    "UPDATE outbox SET updated_at = ?3
                     WHERE id = ?1 AND state = 'pending' AND attempts = ?2",
                    params![a.id, a.attempts, crate::model::time::now_ms()],
                )
            })
            .is_ok_and(|n| n == 1)
    }

    /// Records an attempt's result.
    pub(crate) fn finish(&self, a: &Action, st: &str, next_at: i64, decision: &str, reason: &str) {
        let now = crate::model::time::now_ms();
        let res = self.db.with(|c| -> rusqlite::Result<()> {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE outbox SET state = ?2, attempts = ?3, next_at = ?4, updated_at = ?5,
                 last_error = ?6 WHERE id = ?1",
                params![
                    a.id,
                    st,
                    a.attempts,
                    next_at,
                    now,
                    (decision != "done").then_some(reason)
                ],
            )?;
            self.record(
                &tx,
                now,
                (&a.receiver, &a.incident_id, &a.target),
                Some(a.id),
                decision,
                reason,
            )?;
            tx.commit()
        });
        match res {
            Ok(()) => self.count(Some(state::PENDING), Some(st), 1),
            Err(e) => {
                tracing::error!(receiver = %a.receiver, action = a.id, "writing the outbox: {e}")
            }
        }
    }

    /// Deletes, in batches, the actions finished (done, dead, dry-run) before `actions` and
    /// the decisions made before `decisions`. Returns how many of each were deleted.
    pub fn prune(&self, actions: i64, decisions: i64) -> rusqlite::Result<(usize, usize)> {
        let mut deleted_actions = 0;
        for st in [state::DONE, state::DEAD, state::DRY_RUN] {
            let n = self.delete_in_batches(
                &format!(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                     WHERE state = '{st}' AND updated_at < ?1 LIMIT ?2)"
                ),
                actions,
            )?;
            self.count(Some(st), None, n);
            deleted_actions += n;
        }
        let deleted_decisions = self.delete_in_batches(
            "DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE at < ?1 LIMIT ?2)",
            decisions,
        )?;
        Ok((deleted_actions, deleted_decisions))
    }

    /// Runs `sql` (parameters: `before`, the batch size) until it deletes fewer than a
    /// batch, taking the connection for one batch at a time.
    fn delete_in_batches(&self, sql: &str, before: i64) -> rusqlite::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.db.with(|c| {
                c.prepare_cached(sql)?
                    .execute(params![before, crate::retention::BATCH as i64])
            })?;
            total += n;
            if n < crate::retention::BATCH {
                return Ok(total);
            }
        }
    }

    /// Actions per state, from the table.
    pub(crate) fn count_by_state(&self) -> rusqlite::Result<BTreeMap<String, usize>> {
        self.db.with(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::db::Db;
    use crate::metrics::Metrics;
    use crate::model::incident::{Incident, IncidentStatus};

    /// Writes an action in state `st`, last changed at `at`, behind the outbox's back.
    fn insert(db: &Db, st: &str, at: i64) -> i64 {
        let payload = serde_json::to_string(&Payload {
            incident: Incident {
                id: "i".into(),
                group_key: "g".into(),
                group_labels: Vec::new(),
                status: IncidentStatus::Firing,
                alerts: Vec::new(),
            },
            suspects: Vec::new(),
            ambiguous: false,
        })
        .unwrap();
        db.with(|c| {
            c.execute(
                "INSERT INTO outbox (receiver, group_key, incident_id, target, idempotency_key,
                     payload, state, created_at, next_at, updated_at)
                 VALUES ('hook', 'g', 'i', 't', hex(randomblob(16)), ?3, ?1, ?2, ?2, ?2)",
                params![st, at, payload],
            )
            .unwrap();
            c.last_insert_rowid()
        })
    }

    fn decision(db: &Db, at: i64) {
        db.with(|c| {
            c.execute(
                "INSERT INTO decisions (at, receiver, incident_id, target, decision, reason)
                 VALUES (?1, 'hook', 'i', 't', 'done', '')",
                [at],
            )
            .unwrap()
        });
    }

    fn gauges(o: &Outbox) -> BTreeMap<String, usize> {
        state::ALL
            .iter()
            .map(|st| {
                let v = o.metrics.get("faultline_outbox_actions", &[("state", st)]);
                (st.to_string(), v.unwrap_or(-1.0) as usize)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    #[test]
    fn the_gauges_follow_every_change_of_state() {
        let db = Db::in_memory().unwrap();
        insert(&db, state::PENDING, 0);
        insert(&db, state::PENDING, 0);
        let dead = insert(&db, state::DEAD, 0);
        let o = Outbox::new(db.clone(), Arc::new(Metrics::default()));
        assert_eq!(gauges(&o), o.count_by_state().unwrap(), "counted at start");
        assert_eq!(gauges(&o)[state::PENDING], 2);

        let a = o.actions(Some(state::PENDING), 1).remove(0);
        o.finish(&a, state::DONE, 0, "done", "ok");
        assert_eq!(gauges(&o), o.count_by_state().unwrap(), "after an attempt");
        o.retry(dead, 1).unwrap();
        assert_eq!(gauges(&o), o.count_by_state().unwrap(), "after a retry");
        o.prune(i64::MAX, 0).unwrap();
        assert_eq!(gauges(&o), o.count_by_state().unwrap(), "after pruning");
        assert_eq!(
            gauges(&o),
            BTreeMap::from([(state::PENDING.to_string(), 2)])
        );
    }

    #[test]
    fn prune_deletes_old_finished_actions_and_decisions_only() {
        let db = Db::in_memory().unwrap();
        let (old, horizon, recent) = (1_000, 2_000, 3_000);
        // More than a batch, so that pruning takes several.
        for _ in 0..crate::retention::BATCH + 10 {
            insert(&db, state::DONE, old);
        }
        insert(&db, state::DEAD, old);
        insert(&db, state::DRY_RUN, old);
        let kept = [
            insert(&db, state::PENDING, old),
            insert(&db, state::DONE, recent),
            insert(&db, state::DEAD, recent),
        ];
        decision(&db, old);
        decision(&db, recent);
        let o = Outbox::new(db.clone(), Arc::new(Metrics::default()));
        let deleted = o.prune(horizon, horizon).unwrap();
        assert_eq!(deleted, (crate::retention::BATCH + 12, 1));
        let mut left: Vec<i64> = o.actions(None, 100).iter().map(|a| a.id).collect();
        left.sort();
        assert_eq!(left, kept, "pending and recent actions stay");
        let at: Vec<i64> = o
            .decisions(&DecisionQuery::default())
            .iter()
            .map(|d| d.at)
            .collect();
        assert_eq!(at, [recent]);
        assert_eq!(gauges(&o), o.count_by_state().unwrap());
    }
}
