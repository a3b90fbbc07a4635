//! HTTP/1.x parsing (to be written).
