//! TODO(owner): see module list in lib.rs
