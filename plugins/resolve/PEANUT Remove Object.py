"""DaVinci Resolve menu script (Workspace > Scripts > Edit > PEANUT Remove Object).

A thin dialog around peanut_resolve.remove_current_clip: prompt, mask file,
preset, a progress line and Cancel. The job runs in a thread; Resolve's API is
only called from the UI thread (reading the clip before, placing after).
"""

import os
import sys
import threading


def _module_dirs():
    here = globals().get("__file__")
    if here:
        yield os.path.dirname(os.path.abspath(here))
    # Resolve does not always set __file__ for menu scripts: the install folders.
    yield os.path.join(os.path.expanduser("~"), "Library", "Application Support", "Blackmagic Design",
                       "DaVinci Resolve", "Fusion", "Scripts", "Edit")
    yield os.path.join(os.environ.get("APPDATA", ""), "Blackmagic Design", "DaVinci Resolve", "Support",
                       "Fusion", "Scripts", "Edit")
    yield os.path.join(os.path.expanduser("~"), ".local", "share", "DaVinciResolve", "Fusion", "Scripts", "Edit")


for _folder in _module_dirs():
    if os.path.isfile(os.path.join(_folder, "peanut_resolve.py")):
        sys.path.insert(0, _folder)
        break

import peanut_resolve as pr  # noqa: E402

pr.load_install_config()


def main(resolve, fusion, bmd):
    ui = fusion.UIManager
    dispatcher = bmd.UIDispatcher(ui)
    window = dispatcher.AddWindow(
        {"ID": "PeanutWin", "WindowTitle": "PEANUT Remove Object", "Geometry": [200, 200, 460, 210]},
        ui.VGroup([
            ui.Label({"Text": "What should disappear from the clip under the playhead?"}),
            ui.LineEdit({"ID": "Prompt", "PlaceholderText": "the man in the red jacket"}),
            ui.HGroup([
                ui.LineEdit({"ID": "Mask", "PlaceholderText": "or a mask image / folder / video (optional)"}),
                ui.Button({"ID": "Browse", "Text": "Browse", "Weight": 0}),
            ]),
            ui.HGroup([
                ui.LineEdit({"ID": "Box", "PlaceholderText": "or a box F:X,Y,W,H (source frame, pixels; optional)"}),
                ui.CheckBox({"ID": "Approximate", "Text": "Approximate", "Weight": 0}),
            ]),
            ui.HGroup([
                ui.Label({"Text": "Quality", "Weight": 0}),
                ui.ComboBox({"ID": "Preset"}),
            ]),
            ui.Label({"ID": "Status", "Text": "Ready."}),
            ui.HGroup([
                ui.Button({"ID": "Run", "Text": "Remove"}),
                ui.Button({"ID": "Cancel", "Text": "Close"}),
            ]),
        ]),
    )
    items = window.GetItems()
    for preset in ("balanced", "draft", "quality"):
        items["Preset"].AddItem(preset)
    state = {"thread": None, "cancel": threading.Event(), "progress": "", "result": None, "error": None, "plan": None}

    def set_status(text):
        items["Status"].Text = text

    def on_browse(event):
        path = fusion.RequestFile()
        if path:
            items["Mask"].Text = path

    def on_run(event):
        if state["thread"] is not None:
            return
        try:
            plan, project, timeline = pr.plan_current_clip(resolve, items["Prompt"].Text, items["Mask"].Text,
                                                           items["Box"].Text.strip())
        except pr.ResolveScriptError as exc:
            set_status(str(exc))
            return
        state.update(plan=(plan, project, timeline), result=None, error=None)
        state["cancel"].clear()
        transport = pr.default_transport()
        options = {"preset": items["Preset"].CurrentText}
        request = pr.JobRequest(plan.source_path, plan.start, plan.end, plan.prompt, plan.mask_path,
                                plan.output_path, plan.matte_path, options, box=items["Box"].Text.strip(),
                                approximate=bool(items["Approximate"].Checked))

        def progress(stage, done, total):
            state["progress"] = f"{stage}: {done}/{total} frames" if total else stage

        def work():
            try:
                os.makedirs(os.path.dirname(plan.output_path), exist_ok=True)
                state["result"] = transport.run(request, progress, state["cancel"].is_set)
            except Exception as exc:  # shown in the dialog, never a traceback in Resolve's console only
                state["error"] = str(exc)

        items["Run"].Enabled = False
        items["Cancel"].Text = "Cancel"
        set_status(f"Cleaning '{plan.clip_name}' (frames {plan.start}-{plan.end - 1})...")
        state["thread"] = threading.Thread(target=work, daemon=True)
        state["thread"].start()
        timer.Start()

    def on_tick(event):
        thread = state["thread"]
        if thread is None:
            return
        if thread.is_alive():
            set_status(state["progress"] or "queued...")
            return
        timer.Stop()
        state["thread"] = None
        items["Run"].Enabled = True
        items["Cancel"].Text = "Close"
        if state["error"]:
            set_status(state["error"])
            return
        plan, project, timeline = state["plan"]
        try:
            placed = pr.place_result(project, timeline, plan, state["result"])
            set_status(f"Done: '{placed.GetName()}' placed above the clip; matte in the PEANUT bin.")
        except pr.ResolveScriptError as exc:
            set_status(str(exc))

    def on_cancel(event):
        if state["thread"] is not None:
            state["cancel"].set()
            set_status("Cancelling...")
            return
        dispatcher.ExitLoop()

    timer = ui.Timer({"ID": "PeanutTick", "Interval": 250})
    dispatcher.On.PeanutTick.Timeout = on_tick
    window.On.Browse.Clicked = on_browse
    window.On.Run.Clicked = on_run
    window.On.Cancel.Clicked = on_cancel
    window.On.PeanutWin.Close = on_cancel
    window.Show()
    dispatcher.RunLoop()
    window.Hide()


if __name__ == "__main__" or "resolve" in globals():
    _resolve = globals().get("resolve") or bmd.scriptapp("Resolve")  # noqa: F821 (Resolve's globals)
    main(_resolve, _resolve.Fusion(), bmd)  # noqa: F821
