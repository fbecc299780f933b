"""mfaranet_ros: MFARANet real-time semantic segmentation for ROS 2."""
__version__ = "0.1.0"
