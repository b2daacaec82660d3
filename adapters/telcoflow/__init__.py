"""adapters/telcoflow"""
