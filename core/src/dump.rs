//! Placeholder: written by the CLI helper.
