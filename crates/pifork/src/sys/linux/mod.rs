//! Thin wrappers over the Linux syscalls pifork needs, one per syscall, each returning
//! `Result<_, Errno>` with the raw call checked right where it is made. Whatever takes over or
//! closes a descriptor by number is `unsafe` and says what the caller must guarantee.

mod code;
mod exec;
mod fd;
mod futex;
mod process;
mod shm;
mod socket;

pub use code::*;
pub use exec::*;
pub use fd::*;
pub use futex::*;
pub use process::*;
pub use shm::*;
pub use socket::*;
