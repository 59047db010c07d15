//! Server benchmark (filled in later).

fn main() {}
