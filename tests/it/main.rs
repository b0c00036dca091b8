//! Integration tests of smime-acme, run against the loopback testbed (`tests/testbed/up`).

mod cli;
mod doctor;
mod faults;
mod flood;
mod forged;
mod generated;
mod install;
mod lifecycle;
mod mailbox;
mod obtain;
mod provision;
mod smoke;
mod testbed;
