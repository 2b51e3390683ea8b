"""The aptitude test, capability profiles and the runners that make a model take the test."""
