//! Integration tests of smime-acme, run against the loopback testbed (`tests/testbed/up`).

mod cli;
mod discover;
mod doctor;
mod everyday;
mod faults;
mod flood;
mod forged;
mod generated;
mod install;
mod learned;
mod lifecycle;
mod mailbox;
mod oauth;
mod obtain;
mod provision;
mod smoke;
mod testbed;
mod unattended;
