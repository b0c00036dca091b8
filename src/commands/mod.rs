//! One file per subcommand: each takes resolved settings and the output, and returns a result
//! that `lib.rs` maps to the exit status.

pub mod obtain;
