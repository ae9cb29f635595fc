//! The SIP MESSAGE <-> MSRP gateway's own state (issue 9; see `docs/architecture.md`). Built
//! so far: the bounded queue a session holds messages in until its MSRP leg can take them.
//! The service that owns sessions per shard comes with the route actions `msrp_answer` and
//! `msg_to_msrp`.

pub mod queue;
