// `sqlx::migrate!` embeds ./migrations at compile time, but cargo does not know the macro read
// that directory: without this, a new or edited migration is left out of an incremental build
// and the binary runs the old schema.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
