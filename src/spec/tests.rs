//! Spec loading tests.
