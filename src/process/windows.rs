//! The Windows backend (spawn only).
