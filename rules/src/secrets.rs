//! Placeholder: plaintext secret detection.
