//! Request body inspection: inspected routes and their schema, the strict
//! JSON parser, Unicode normalization, escape decoding, the injection rules,
//! the prompt-injection scorer and the verdict on one body. Pure; depends on `http` only.

pub mod body;
pub mod escapes;
pub mod filename;
pub mod forms;
pub mod json_strict;
pub mod normalization;
pub mod routes;
pub mod rules;
pub mod scorer;
pub mod verdict;
