//! Running async code on the storage backend the machine supports.
//!
//! A shard is one thread with a current-thread tokio runtime. With io_uring that runtime is
//! tokio-uring's (tokio plus an io_uring driver); without it, a plain tokio runtime with a
//! `LocalSet`, on which the POSIX backend runs its file calls on the blocking pool. Either way
//! `tokio::net`, timers, `spawn_local` and `tokio::sync` work the same.

use std::future::Future;

use crate::io::{io_uring_available, Backend, BackendChoice};

/// Picks the backend for `choice`: `Auto` takes io_uring when the kernel allows it.
pub fn select_backend(choice: BackendChoice) -> Result<Backend, String> {
    match choice {
        BackendChoice::Posix => Ok(Backend::Posix),
        BackendChoice::IoUring if io_uring_available() => Ok(Backend::Uring),
        BackendChoice::IoUring => Err(
            "io_uring was requested but cannot be set up here (old kernel, \
             kernel.io_uring_disabled, or a seccomp profile that blocks it); \
             use the posix backend or allow io_uring"
                .into(),
        ),
        BackendChoice::Auto if io_uring_available() => Ok(Backend::Uring),
        BackendChoice::Auto => {
            tracing::warn!("io_uring is unavailable; storage uses the POSIX backend");
            Ok(Backend::Posix)
        }
    }
}

/// Runs `f(backend)` to completion on the current thread, on a runtime that suits `backend`.
pub fn block_on<F, Fut>(backend: Backend, f: F) -> std::io::Result<Fut::Output>
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future,
{
    let uring = match &backend {
        Backend::Uring => true,
        Backend::Posix => false,
        Backend::Faulty(faulty) => faulty.inner_is_uring(),
    };
    if uring {
        let runtime = tokio_uring::Runtime::new(&tokio_uring::builder())?;
        Ok(runtime.block_on(f(backend)))
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = tokio::task::LocalSet::new();
        Ok(local.block_on(&runtime, f(backend)))
    }
}
