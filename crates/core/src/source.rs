//! Sources produce task specs: a spec file, a directory of them, an issue tracker.

use async_trait::async_trait;

use crate::error::Result;
use crate::spec::TaskSpec;

/// Loads task specs from somewhere.
#[async_trait]
pub trait Source: Send + Sync {
    /// The specs this source has now.
    async fn load(&self) -> Result<Vec<TaskSpec>>;
}
