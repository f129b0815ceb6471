//! Validation of every resource (PLACEHOLDER: being implemented).

use super::error::ValidationError;
use super::resource::Resource;

impl Resource {
    /// Checks the resource against Calico's rules and limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}
