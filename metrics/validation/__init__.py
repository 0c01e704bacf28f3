"""`manage.py validate_hive`: prove a deployment keeps coordinating when its processes fail.

runner (the run), crew (who works), faults (what goes wrong), processes (every child ended),
feed (a real WebSocket client), repository (side effects), report (verdict and text),
records (the ValidationRun row and its events).
"""
