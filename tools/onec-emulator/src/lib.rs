//! 1C emulator library.
