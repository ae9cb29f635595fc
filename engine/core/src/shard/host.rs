//! Running routes: the route [`Host`] a shard presents to the interpreter for one message, and
//! the runs themselves (a received message, a pulled or expired item, a run resumed with another
//! shard's answer). Actions on state this shard owns act at once; those whose key another shard
//! owns send a [`RemoteOp`] and suspend the run (see [`super::remote`]).

use super::boundary::{Out, RemoteOp, RepoOp, Token, Work};
use super::remote::ANSWER_TIMEOUT_MS;
use super::repository::{receive_context, rx_of_item};
use super::{Cx, ShardCore, MAX_HEADERS};
use crate::gateway::{EventFields, GwOp, InviteIn, MessageIn, SipReply};
use crate::repo::StoredMessage;
use crate::route::{
    self, ActionResult, AsyncPullRequest, AsyncPullResult, CheckResult, ForwardResult, GwField,
    HeaderEdit, Host, LogLevel, MsgToMsrp, MsgToMsrpResult, MsrpAnswer, MsrpAnswerResult, Outcome,
    PullRequest, PullResult, PushResult, Reply, ReplyMode, RmResult, RouteId, SendMessage,
    SendMessageResult, Target, Transport,
};
use crate::sip_write;
use crate::transport::RxContext;
use sipshard_parser::sip::{self, Framing, Message, EMPTY_HEADER};
use sipshard_parser::Status;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

impl ShardCore {
    /// Runs `route` on `msg` and keeps the run if it waits for another shard.
    pub(super) fn run_route(
        &mut self,
        cx: Cx<'_>,
        msg: &Message<'_, '_>,
        rx: RxContext,
        route: RouteId,
        outs: &mut Vec<Out>,
    ) {
        let mut host = MsgHost {
            core: self,
            cx,
            msg,
            rx,
            outs,
            token: None,
            event: None,
        };
        let outcome = route::run(&cx.loaded.program, route, &mut host);
        let token = host.token;
        self.finish(cx, outcome, token, msg.as_bytes(), rx);
    }

    /// Runs an event route of the gateway, whose fields the route reads as `$gw(...)`. It
    /// answers no request, and a run that would wait for another shard is not kept.
    pub(super) fn run_event_route(
        &mut self,
        cx: Cx<'_>,
        msg: &Message<'_, '_>,
        rx: RxContext,
        route: RouteId,
        fields: &EventFields,
        outs: &mut Vec<Out>,
    ) {
        let mut host = MsgHost {
            core: self,
            cx,
            msg,
            rx,
            outs,
            token: None,
            event: Some(fields),
        };
        let outcome = route::run(&cx.loaded.program, route, &mut host);
        let token = host.token;
        self.finish(cx, outcome, token, msg.as_bytes(), rx);
    }

    /// Continues a run with another shard's answer.
    pub(super) fn resume(
        &mut self,
        cx: Cx<'_>,
        token: Token,
        result: Option<ActionResult>,
        reply: Option<SipReply>,
        outs: &mut Vec<Out>,
    ) {
        let Some(w) = self.remote.answer(token) else {
            self.log(
                LogLevel::Warn,
                "an answer from another shard came for no waiting run (it had passed its deadline)",
            );
            return;
        };
        let (Some(suspended), Some(rx)) = (w.suspended, w.rx) else {
            return;
        };
        if let Some(reply) = reply {
            // The request is answered whatever becomes of the run.
            let mut headers = [EMPTY_HEADER; MAX_HEADERS];
            if let Ok(Status::Complete(msg)) = sip::parse(&w.bytes, &mut headers, Framing::Datagram)
            {
                self.send_gw_reply(cx.now_ms, &msg, &rx, reply, outs);
            }
        }
        let Some(result) = result else {
            self.log(
                LogLevel::Warn,
                "config reloaded while a route waited for another shard; the owner refused the operation and the run is dropped",
            );
            return;
        };
        if w.generation != cx.generation {
            self.log(
                LogLevel::Warn,
                "config reloaded while a route waited for another shard; the run is dropped",
            );
            return;
        }
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete(msg)) = sip::parse(&w.bytes, &mut headers, Framing::Datagram)
        else {
            return;
        };
        let mut host = MsgHost {
            core: self,
            cx,
            msg: &msg,
            rx,
            outs,
            token: None,
            event: None,
        };
        let outcome = route::resume(&cx.loaded.program, suspended, result, &mut host);
        let token = host.token;
        self.finish(cx, outcome, token, &w.bytes, rx);
    }

    fn finish(
        &mut self,
        cx: Cx<'_>,
        outcome: Outcome,
        token: Option<Token>,
        bytes: &[u8],
        rx: RxContext,
    ) {
        match outcome {
            Outcome::Suspended(suspended) => match token {
                Some(token) => self.remote.park(token, suspended, bytes, rx, cx.generation),
                None => self.log(
                    LogLevel::Error,
                    "a route suspended without a pending operation",
                ),
            },
            other => {
                // The run finished without waiting after all (an action after the remote one
                // failed the run, say): the operation is still carried out and its answer is
                // logged as coming for no waiting run.
                if let Some(token) = token {
                    self.remote.release(token);
                }
                if let Outcome::Failed(e) = other {
                    self.log(LogLevel::Error, &format!("route failed: {e}"));
                }
            }
        }
    }

    /// Runs `route` on a stored item as if it had just arrived from its original sender.
    pub(super) fn run_item(
        &mut self,
        cx: Cx<'_>,
        item: &StoredMessage,
        route: RouteId,
        outs: &mut Vec<Out>,
    ) {
        let rx = rx_of_item(item.context(), &self.listen);
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        match sip::parse(item.message(), &mut headers, Framing::Datagram) {
            Ok(Status::Complete(msg)) => self.run_route(cx, &msg, rx, route, outs),
            _ => self.log(LogLevel::Error, "a stored message no longer parses"),
        }
    }
}

/// The route host for one message on one shard.
struct MsgHost<'s, 'c, 'm, 'h, 'b> {
    core: &'s mut ShardCore,
    cx: Cx<'c>,
    msg: &'m Message<'h, 'b>,
    rx: RxContext,
    outs: &'s mut Vec<Out>,
    /// The operation the run waits for, if it suspends.
    token: Option<Token>,
    /// The gateway event an event route runs for.
    event: Option<&'s EventFields>,
}

impl MsgHost<'_, '_, '_, '_, '_> {
    /// Runs a repository operation here when this shard owns its Call-ID; otherwise sends it
    /// to the owner and answers `Pending`.
    fn repo_op(&mut self, op: RepoOp) -> Poll<ActionResult> {
        let owner = self.core.own.of_callid(op.callid());
        if owner == self.core.own.me() {
            return Poll::Ready(self.core.repo_op(self.cx, op, self.outs));
        }
        let op = RemoteOp::Repo(op);
        let token = self.core.remote.reserve(self.cx.now_ms, owner, op.name());
        self.token = Some(token);
        self.core
            .stats
            .cross_shard_ops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.outs.push(Out::Shard {
            to: owner,
            work: Work::Remote {
                token,
                from: self.core.own.me(),
                generation: self.cx.generation,
                op,
            },
        });
        Poll::Pending
    }
}

/// Why a request was not taken by a gateway action.
enum Taken {
    /// No gateway, an event route, or not the method the action takes: logged, not answered.
    No,
    /// The transaction layer is full: answered 503.
    Full,
}

impl MsgHost<'_, '_, '_, '_, '_> {
    /// Takes the request for a gateway action that handles `method`: its server transaction
    /// from now on (so its retransmissions are absorbed while the gateway works on it, and
    /// answered again once it has answered).
    fn take_for_gateway(&mut self, method: &[u8], refusal: &str) -> Result<(), Taken> {
        if self.core.gateway.is_none() || self.event.is_some() || self.msg.method() != Some(method)
        {
            self.log(LogLevel::Warn, refusal.as_bytes());
            return Err(Taken::No);
        }
        self.core
            .server_tx(self.cx.now_ms, self.msg, &self.rx, self.outs)
            .map(|_| ())
            .map_err(|()| Taken::Full)
    }
}

/// Unwraps the result of [`MsgHost::repo_op`] into the action's own result type.
macro_rules! ready_as {
    ($poll:expr, $variant:ident) => {
        match $poll {
            Poll::Ready(ActionResult::$variant(r)) => Poll::Ready(r),
            Poll::Ready(other) => unreachable!("{} answered {:?}", stringify!($variant), other),
            Poll::Pending => Poll::Pending,
        }
    };
}

impl Host for MsgHost<'_, '_, '_, '_, '_> {
    fn message(&self) -> &Message<'_, '_> {
        self.msg
    }

    fn source(&self) -> SocketAddr {
        self.rx.source
    }

    fn transport(&self) -> Transport {
        self.rx.transport
    }

    fn shard(&self) -> u16 {
        self.core.own.me() as u16
    }

    fn write_uid(&mut self, out: &mut Vec<u8>) {
        self.core.uid.write_next(out);
    }

    fn reply(&mut self, reply: &Reply<'_>) {
        if !self.msg.is_request() || self.msg.method() == Some(b"ACK") {
            return;
        }
        if self.event.is_some() {
            self.log(
                LogLevel::Warn,
                b"reply: a gateway event route has no request to answer",
            );
            return;
        }
        let mut out = Vec::with_capacity(512);
        let to = sip_write::Answering::new(self.msg, self.rx.source);
        sip_write::write_answer(
            &to,
            reply.code,
            reply.reason,
            self.core.tags.fresh(),
            reply.headers,
            None,
            &mut out,
        );
        self.core
            .respond_to(self.cx.now_ms, &to, &self.rx, reply.code, out, self.outs);
    }

    fn forward(&mut self, to: Target, edits: &[HeaderEdit]) -> Poll<ForwardResult> {
        if !self.msg.is_request() {
            self.log(
                LogLevel::Warn,
                b"forward: only requests are forwarded (a response goes back along its Vias)",
            );
            return Poll::Ready(ForwardResult::Error);
        }
        if to.transport != Transport::Udp {
            self.log(
                LogLevel::Warn,
                b"forward over TCP is not supported yet; use udp:",
            );
            return Poll::Ready(ForwardResult::Error);
        }
        // Our Via must name an address the next hop can answer to: a listen address of the
        // target's family that is not a wildcard.
        let same_family = |a: &SocketAddr| a.is_ipv4() == to.addr.is_ipv4();
        let Some(listen) =
            self.core.listen.iter().position(|(t, a)| {
                *t == Transport::Udp && same_family(a) && !a.ip().is_unspecified()
            })
        else {
            self.log(
                LogLevel::Warn,
                b"forward: no UDP listen address of the target's family names a host for our Via (a wildcard such as 0.0.0.0 does not); listen on a specific address",
            );
            return Poll::Ready(ForwardResult::Error);
        };
        if self.msg.max_forwards() == Some(0) {
            return Poll::Ready(ForwardResult::Error);
        }
        let mut branch = Vec::with_capacity(40);
        branch.extend_from_slice(b"-ss-");
        self.core.uid.write_next(&mut branch);
        let mut out = Vec::with_capacity(self.msg.len() + 128);
        sip_write::write_forward(
            self.msg,
            self.core.listen[listen].1,
            &branch,
            edits,
            &mut out,
        );
        self.outs.push(Out::Datagram {
            listen: listen as u16,
            dest: to.addr,
            bytes: out,
        });
        Poll::Ready(ForwardResult::Sent)
    }

    fn push(
        &mut self,
        msgid: &[u8],
        expire: Option<Duration>,
        stored_msgid: &mut Vec<u8>,
    ) -> Poll<PushResult> {
        let ctx = receive_context(&self.rx, self.core.own.me());
        // The configured lifetime is read per message, so a reload applies to the next push.
        let expire_ms = expire.map_or_else(
            || self.cx.loaded.config.repo.expire.saturating_mul(1000),
            |d| d.as_millis() as u64,
        );
        let r = self.core.repo.push(
            self.msg,
            ctx,
            msgid,
            expire_ms,
            self.cx.now_ms,
            stored_msgid,
        );
        match r {
            Some(r) => Poll::Ready(r),
            None => {
                self.log(LogLevel::Error, b"push: the message has no Call-ID or CSeq");
                Poll::Ready(PushResult::Full)
            }
        }
    }

    fn pull(&mut self, req: &PullRequest<'_>) -> Poll<PullResult> {
        ready_as!(
            self.repo_op(RepoOp::Pull {
                callid: req.callid.to_vec(),
                msgid: req.msgid.to_vec(),
                route: req.route,
                remove: req.remove,
            }),
            Pull
        )
    }

    fn async_pull(&mut self, req: &AsyncPullRequest<'_>) -> Poll<AsyncPullResult> {
        ready_as!(
            self.repo_op(RepoOp::AsyncPull {
                callid: req.callid.to_vec(),
                msgid: req.msgid.to_vec(),
                group: req.group.index(),
                route: req.route,
                remove: req.remove,
            }),
            AsyncPull
        )
    }

    fn rm(&mut self, callid: &[u8], msgid: &[u8]) -> Poll<RmResult> {
        ready_as!(
            self.repo_op(RepoOp::Rm {
                callid: callid.to_vec(),
                msgid: msgid.to_vec(),
            }),
            Rm
        )
    }

    fn check(&mut self, callid: &[u8], msgid: Option<&[u8]>) -> Poll<CheckResult> {
        ready_as!(
            self.repo_op(RepoOp::Check {
                callid: callid.to_vec(),
                msgid: msgid.map(<[u8]>::to_vec),
            }),
            Check
        )
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        self.core.log(level, &String::from_utf8_lossy(message));
    }

    fn msg_to_msrp(&mut self, req: &MsgToMsrp<'_>) -> Poll<MsgToMsrpResult> {
        match self.take_for_gateway(
            b"MESSAGE",
            "msg_to_msrp: only a received MESSAGE goes to an MSRP session",
        ) {
            Err(Taken::No) => return Poll::Ready(MsgToMsrpResult::Error),
            Err(Taken::Full) => return Poll::Ready(MsgToMsrpResult::Full),
            Ok(()) => {}
        }
        let sip::StartLine::Request { uri, .. } = self.msg.start_line() else {
            return Poll::Ready(MsgToMsrpResult::Error);
        };
        let m = MessageIn {
            key: req.key.to_vec(),
            types: req.content_types.to_vec(),
            mode: req.mode,
            from: self
                .msg
                .from()
                .map(|f| f.uri.raw.to_vec())
                .unwrap_or_default(),
            to: self
                .msg
                .to()
                .map(|t| t.uri.raw.to_vec())
                .unwrap_or_default(),
            ruri: uri.to_vec(),
            call_id: self.msg.call_id().unwrap_or_default().to_vec(),
            content_type: self.msg.content_type().unwrap_or(b"text/plain").to_vec(),
            body: self.msg.body().to_vec(),
        };
        let (me, owner) = (self.core.own.me(), self.core.own.of_key(req.key));
        let wait_ms = match req.mode {
            ReplyMode::Sync => self
                .cx
                .loaded
                .config
                .gateway
                .sync_timeout
                .saturating_mul(1000)
                .saturating_add(ANSWER_TIMEOUT_MS),
            ReplyMode::Async => ANSWER_TIMEOUT_MS,
        };
        if owner != me {
            let op = GwOp::MsgToMsrp(Box::new(m));
            self.token = Some(
                self.core
                    .send_gateway_op(self.cx, owner, op, wait_ms, self.outs),
            );
            return Poll::Pending;
        }
        let token = (req.mode == ReplyMode::Sync).then(|| {
            self.core
                .remote
                .reserve_for(self.cx.now_ms, me, "msg_to_msrp", wait_ms)
        });
        let waiting = token.map(|t| (me, t));
        let r = self
            .core
            .gw_call(self.cx.now_ms, self.outs, |gw, io| {
                gw.msg_to_msrp(m, waiting, io)
            })
            .flatten();
        match r {
            Some((result, reply)) => {
                if let Some(t) = token {
                    self.core.remote.release(t);
                }
                self.core
                    .send_gw_reply(self.cx.now_ms, self.msg, &self.rx, reply, self.outs);
                Poll::Ready(result)
            }
            None => {
                self.token = token;
                Poll::Pending
            }
        }
    }

    fn msrp_answer(&mut self, req: &MsrpAnswer<'_>) -> Poll<MsrpAnswerResult> {
        if self
            .take_for_gateway(b"INVITE", "msrp_answer: only a received INVITE is answered")
            .is_err()
        {
            return Poll::Ready(MsrpAnswerResult::Error);
        }
        let a = InviteIn {
            key: req.key.to_vec(),
            types: req.content_types.to_vec(),
            from: req.from.to_vec(),
            to: req.to.to_vec(),
            ruri: req.ruri.to_vec(),
            invite: self.msg.as_bytes().to_vec(),
            rx: self.rx,
        };
        let (me, owner) = (self.core.own.me(), self.core.own.of_key(req.key));
        if owner != me {
            let op = GwOp::MsrpAnswer(Box::new(a));
            self.token =
                Some(
                    self.core
                        .send_gateway_op(self.cx, owner, op, ANSWER_TIMEOUT_MS, self.outs),
                );
            return Poll::Pending;
        }
        let Some((result, reply)) = self
            .core
            .gw_call(self.cx.now_ms, self.outs, |gw, io| gw.msrp_answer(a, io))
        else {
            return Poll::Ready(MsrpAnswerResult::Error);
        };
        self.core
            .send_gw_reply(self.cx.now_ms, self.msg, &self.rx, reply, self.outs);
        Poll::Ready(result)
    }

    fn send_message(&mut self, req: &SendMessage<'_>) -> Poll<SendMessageResult> {
        let r = self
            .core
            .gw_call(self.cx.now_ms, self.outs, |gw, io| gw.send_message(req, io));
        Poll::Ready(r.unwrap_or(SendMessageResult::Error))
    }

    fn event_field(&self, field: GwField, out: &mut Vec<u8>) {
        let Some(f) = self.event else {
            return;
        };
        match field {
            GwField::Key => out.extend_from_slice(&f.key),
            GwField::FromUri => out.extend_from_slice(&f.from_uri),
            GwField::ToUri => out.extend_from_slice(&f.to_uri),
            GwField::RUri => out.extend_from_slice(&f.ruri),
            GwField::Code => {
                if let Some(c) = f.code {
                    crate::wire::dec(out, c);
                }
            }
            GwField::Reason => out.extend_from_slice(&f.reason),
            GwField::Cause => out.extend_from_slice(f.cause.as_bytes()),
            GwField::MsgId => out.extend_from_slice(&f.msgid),
        }
    }
}
