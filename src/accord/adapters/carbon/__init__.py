"""Carbon-intensity sources: files in the common formats (``formats``, ``files``), live
services (``live``), built-in typical profiles (``profiles``) and a fallback chain of them
(``chain``); ``evaluation`` measures temporal and spatial shifting on the shared real data.
See docs/design/carbon.md.
"""
