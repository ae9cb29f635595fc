//! Helpers for the integration tests: where the binaries and the test vectors are.
