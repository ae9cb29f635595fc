//! Route programs: what sipshard does with each message, written in the config file.
//!
//! Routes replace the scripts of the C SIP servers. A route is a list of rules (match ->
//! actions); the `[route]` section of the config is compiled once at load into a [`Program`]
//! (routes by index, templates parsed, header names classified, regexes built, call cycles and
//! unknown names refused with their line), and [`run`] interprets it for one message through a
//! [`Host`], the trait the shard implements over its repository and sockets. The interpreter
//! knows nothing of glommio, sockets or clocks, so it is tested with a mock host.
//!
//! The language is documented in `docs/configuration.md` ("Routes").

mod compile;
mod host;
mod interp;
mod program;
pub(crate) mod raw;
mod template;
mod uid;

#[cfg(test)]
mod tests;

pub(crate) use compile::compile;
pub use host::{
    ActionResult, AsyncPullRequest, AsyncPullResult, CheckResult, ForwardResult, GwField,
    HeaderEdit, Host, LogLevel, MsgToMsrp, MsgToMsrpResult, MsrpAnswer, MsrpAnswerResult,
    PullRequest, PullResult, PushResult, Reply, ReplyMode, RmResult, SendMessage,
    SendMessageResult, Target, Transport,
};
pub use interp::{resume, run, Outcome, RunError, Suspended, MAX_DEPTH};
pub use program::{GroupId, GwEvent, HeaderName, Program, RouteId};
pub use uid::UidGen;

/// The template variables, as (syntax, meaning), for documentation and `--help` texts.
pub fn variables() -> &'static [(&'static str, &'static str)] {
    template::VARIABLES
}
