//! `sqlx::migrate!` embeds the migrations when `bitgate-core` compiles, but
//! Cargo does not know it read them: without this, a new or changed
//! migration alone would leave an incremental build with the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
