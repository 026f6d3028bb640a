//! [`Images`] on Docker: inspect, list, tag, and `docker save` / `docker
//! load` archives in and out.

use super::{DockerEngine, api, is_not_found};
use crate::engine::{ByteStream, EngineError, ImageInfo, Images, Platform};
use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptions, TagImageOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};

/// `name:tag` split where the tag starts (a `:` after the last `/`, so a
/// registry's port is not taken for one); no tag means `latest`.
fn split_tag(reference: &str) -> (&str, &str) {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            &reference[..name_start + i],
            &reference[name_start + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

#[async_trait::async_trait]
impl Images for DockerEngine {
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageInfo {
                id: image.id.unwrap_or_default(),
                repo_tags: image.repo_tags.unwrap_or_default(),
                layers: image.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                os: image.os.unwrap_or_default(),
                architecture: image.architecture.unwrap_or_default(),
                size: image
                    .size
                    .and_then(|size| u64::try_from(size).ok())
                    .unwrap_or(0),
            })),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(api("inspecting an image")(error)),
        }
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError> {
        let images = self
            .docker
            .list_images(None::<ListImagesOptions>)
            .await
            .map_err(api("listing images"))?;
        Ok(images
            .into_iter()
            .map(|image| ImageInfo {
                id: image.id,
                repo_tags: image
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                ..ImageInfo::default()
            })
            .collect())
    }

    async fn export_image(&self, reference: &str) -> Result<ByteStream, EngineError> {
        if self.image(reference).await?.is_none() {
            return Err(EngineError::ImageNotFound(reference.to_string()));
        }
        let stream = self
            .docker
            .export_image(reference)
            .map_err(|e| std::io::Error::other(format!("exporting an image: {e}")));
        Ok(Box::pin(stream))
    }

    async fn export_images(&self, references: &[String]) -> Result<ByteStream, EngineError> {
        for reference in references {
            if self.image(reference).await?.is_none() {
                return Err(EngineError::ImageNotFound(reference.to_string()));
            }
        }
        let names: Vec<&str> = references.iter().map(String::as_str).collect();
        let stream = self
            .docker
            .export_images(&names)
            .map_err(|e| std::io::Error::other(format!("exporting images: {e}")));
        Ok(Box::pin(stream))
    }

    async fn load_image(&self, tar: ByteStream) -> Result<(), EngineError> {
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut progress = self.docker.import_image_stream(options, tar, None);
        while let Some(message) = progress.next().await {
            let message = message.map_err(api("loading an image"))?;
            if let Some(detail) = message.error_detail {
                return Err(EngineError::Api {
                    context: "loading an image".to_string(),
                    message: detail.message.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    async fn tag_image(&self, id: &str, tag: &str) -> Result<(), EngineError> {
        let (repo, tag) = split_tag(tag);
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(id, Some(options))
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    EngineError::ImageNotFound(id.to_string())
                } else {
                    api("tagging an image")(error)
                }
            })
    }

    async fn platform(&self) -> Result<Platform, EngineError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(api("asking the engine's platform"))?;
        Ok(Platform {
            os: version.os.unwrap_or_default(),
            architecture: version.arch.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("app:1.0"), ("app", "1.0"));
        assert_eq!(split_tag("app"), ("app", "latest"));
        assert_eq!(
            split_tag("registry:5000/shop/api:2"),
            ("registry:5000/shop/api", "2")
        );
        assert_eq!(
            split_tag("registry:5000/shop/api"),
            ("registry:5000/shop/api", "latest")
        );
    }
}
