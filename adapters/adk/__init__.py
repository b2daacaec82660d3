"""adapters/adk"""
