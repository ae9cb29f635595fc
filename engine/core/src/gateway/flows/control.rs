//! The gateway's route action `send_message` and its control methods.

use super::*;

impl Gateway {
    // ----- route actions and control -----

    /// `send_message`: a MESSAGE of our own, in a client transaction whose outcome is only
    /// logged.
    pub fn send_message(&mut self, req: &SendMessage<'_>, io: &mut Io<'_>) -> SendMessageResult {
        let (way, route) = match self.way(req.ruri, req.body.len()) {
            Ok(w) => w,
            Err(e) => {
                if let Some(n) = self.refusal() {
                    tracing::warn!(
                        shard = self.me,
                        "send_message: cannot send to `{}`: {e} ({n} refusals so far)",
                        text(req.ruri)
                    );
                }
                return SendMessageResult::Error;
            }
        };
        let call_id = self.mint.call_id();
        let tag = self.mint.call_id();
        let branch = self.mint.branch();
        let routes: Vec<&[u8]> = route.iter().map(Vec::as_slice).collect();
        let mut out = Vec::with_capacity(req.body.len() + 512);
        sip_write::write_request(
            &Request {
                method: "MESSAGE",
                uri: req.ruri,
                from: &gsip::name_addr(req.from),
                from_tag: tag.as_bytes(),
                to: &gsip::name_addr(req.to),
                call_id: call_id.as_bytes(),
                cseq: 1,
                via: way.via,
                branch: branch.as_bytes(),
                route: &routes,
                contact: None,
                extra: &[],
                content_type: Some(req.content_type),
                body: req.body,
            },
            &mut out,
        );
        match self.dispatch(&way, out, Some(TxUse::Other), io) {
            Ok(()) => SendMessageResult::Sent,
            Err(_) => SendMessageResult::Error,
        }
    }

    /// `gw.list_sessions` on this shard: at most `limit` sessions, by key.
    pub fn list(&self, now_ms: u64, limit: usize) -> Vec<Value> {
        let mut v: Vec<(&Key, &Box<GwSession>)> = self.sessions.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
            .take(limit)
            .map(|(k, s)| s.listing(k, self.me, now_ms))
            .collect()
    }

    /// `gw.end_session`: ends the session `key` if this shard holds it.
    pub fn end_session(&mut self, key: &[u8], io: &mut Io<'_>) -> bool {
        if !self.sessions.contains_key(key) {
            return false;
        }
        self.end(key, Ending::new("ended_by_control", 480), io);
        true
    }

    /// Ends every session here (the server is stopping): cause `shutdown`, 503 for what
    /// they still held.
    pub fn end_all(&mut self, io: &mut Io<'_>) {
        let mut keys: Vec<Key> = self.sessions.keys().cloned().collect();
        keys.sort();
        for key in &keys {
            self.end(key, Ending::new("shutdown", 503), io);
        }
    }

    /// `gw.stats` on this shard.
    pub fn stats_json(&self) -> Value {
        let queued: usize = self.sessions.values().map(|s| s.queue.len()).sum();
        let in_flight: usize = self.sessions.values().map(|s| s.in_flight.len()).sum();
        let up = self
            .sessions
            .values()
            .filter(|s| s.state == State::Up)
            .count();
        json!({
            "sessions": self.sessions.len(),
            "sessions_up": up,
            "queued": queued,
            "in_flight": in_flight,
            "transactions": self.by_tx.len(),
        })
    }
}
