"""Course tools for instructors: release student notebooks (`release`) and grade submissions
in a sandbox (`grading`). The lesson's code never imports from here."""
