//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! `migrations/` directory, but cargo does not know to watch it (sqlx's advice).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
