"""Image-quality metrics of restored images: PSNR, SSIM, NIQE, LPIPS."""
