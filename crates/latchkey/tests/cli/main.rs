//! End-to-end tests of the `latchkey` binary against the real server: each
//! test starts Latchkey in this process on a free port with a fresh store,
//! runs the real executable with a chosen environment, and checks what it
//! printed and exited with (and, through the API, what it changed).

mod admin;
mod api_keys;
mod crash;
mod helpers;
mod login;
mod migration;
mod serve;
mod verify;
mod walkthrough;
mod workload;
