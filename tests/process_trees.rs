//! Process trees and signals that reach a task at a syscall boundary:
//! recorded and replayed with identical output and status (issue 3, the
//! part that works without preemption). Each test fails if replay diverges.

mod common;

use common::*;

fn c_program(name: &str) {
    let bin = compile_c(name);
    let r = assert_replays_identically(&[bin.to_str().unwrap()], None);
    r.assert_status(0);
}

#[test]
fn shell_pipeline_and_pid() {
    let r = assert_replays_identically(&["/bin/sh", "-c", "ls / | wc -l; echo $$"], None);
    r.assert_status(0);
}

#[test]
fn fork_wait() {
    c_program("fork_wait");
}

#[test]
fn vfork_exec() {
    c_program("vfork_exec");
}

#[test]
fn posix_spawn() {
    c_program("posix_spawn");
}

#[test]
fn zombie_reaped_later() {
    c_program("zombie_reaped_later");
}

#[test]
fn pipe_between_processes() {
    c_program("pipe_between_processes");
}

#[test]
fn epoll_socketpair() {
    c_program("epoll_socketpair");
}

#[test]
fn pthreads_mutex_condvar_barrier_rwlock() {
    c_program("pthreads_sync");
}

#[test]
fn sigusr1_sent_to_itself() {
    c_program("sigusr1_self");
}

#[test]
fn sigsegv_handler_recovers_with_siglongjmp() {
    c_program("sigsegv_siglongjmp");
}

#[test]
fn sigfpe_handler() {
    c_program("sigfpe");
}
