//! Builds the server again when a migration is added or changed: `sqlx::migrate!` embeds the
//! files of `migrations/` at compile time, and cargo cannot know that it reads them (a new
//! migration was otherwise left out of an incremental build).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
