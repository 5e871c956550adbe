-- wrk script: a bodiless POST, as the Like button sends.
wrk.method = "POST"
