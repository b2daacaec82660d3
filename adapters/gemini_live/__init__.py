"""adapters/gemini_live"""
