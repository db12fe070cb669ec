"""DaVinci Resolve menu script (Workspace > Scripts > Edit > PEANUT Remove Object).

A thin dialog around peanut_resolve: prompt, mask file or box, Approximate and
Shadow too checkboxes, preset, a progress line, and a button that reads
Cancel while a job runs and Close otherwise. The job runs in a thread;
Resolve's API is only called from the UI thread (reading the clip before,
placing after).

Only this file goes under Fusion/Scripts/Edit (Resolve lists every .py there as
a menu entry); install.py puts peanut_resolve.py in Fusion/Modules/PEANUT,
which this script adds to sys.path.

Without fusion.UIManager (the free edition gives menu scripts none since 19.1)
it prints what to do instead in Resolve's Console.
"""

import os
import sys
import threading

MODULE = "peanut_resolve.py"


def _module_dirs():
    here = globals().get("__file__")
    if here:
        scripts_edit = os.path.dirname(os.path.abspath(here))
        # Installed: <Fusion>/Scripts/Edit/<this> and <Fusion>/Modules/PEANUT/peanut_resolve.py.
        yield os.path.join(os.path.dirname(os.path.dirname(scripts_edit)), "Modules", "PEANUT")
        yield scripts_edit  # a checkout (plugins/resolve) or an older install
    # Resolve does not always set __file__ for menu scripts: the per-user, then the
    # all-users Fusion folders of the README's "Using a script" section (never a relative
    # path: that would load whatever peanut_resolve.py the working folder holds).
    for fusion in (
        os.path.join(
            os.path.expanduser("~"), "Library", "Application Support", "Blackmagic Design", "DaVinci Resolve", "Fusion"
        ),
        os.path.join(os.environ.get("APPDATA") or os.sep, "Blackmagic Design", "DaVinci Resolve", "Support", "Fusion"),
        os.path.join(os.path.expanduser("~"), ".local", "share", "DaVinciResolve", "Fusion"),
        os.path.join(os.sep, "Library", "Application Support", "Blackmagic Design", "DaVinci Resolve", "Fusion"),
        os.path.join(os.environ.get("PROGRAMDATA") or os.sep, "Blackmagic Design", "DaVinci Resolve", "Fusion"),
        os.path.join(os.sep, "opt", "resolve", "Fusion"),
        os.path.join(os.sep, "home", "resolve", "Fusion"),
    ):
        yield os.path.join(fusion, "Modules", "PEANUT")


for _folder in _module_dirs():
    if os.path.isfile(os.path.join(_folder, MODULE)):
        if _folder not in sys.path:
            sys.path.insert(0, _folder)
        break

import peanut_resolve as pr  # noqa: E402

pr.load_install_config()

NO_UI_MESSAGE = """PEANUT: this Resolve gives menu scripts no fusion.UIManager (the free edition since 19.1), so the dialog cannot open.
Two other ways:
  1. Resolve's Console (Workspace > Console, Py3), with the playhead over the clip to clean:
       import peanut_resolve; peanut_resolve.run_in_console(resolve, "what to remove")
  2. The OTIO route (any edition): mark each clip with a marker named 'peanut' whose note is the prompt,
     File > Export > Timeline > OpenTimelineIO, then in a terminal:
       peanut otio "Edit 1.otio" -o "Edit 1 PEANUT.otio"
     and File > Import > Timeline the result."""


def main(resolve, fusion, bmd):
    ui = getattr(fusion, "UIManager", None) if fusion is not None else None
    if ui is None:
        print(NO_UI_MESSAGE)
        return
    dispatcher = bmd.UIDispatcher(ui)
    window = dispatcher.AddWindow(
        {"ID": "PeanutWin", "WindowTitle": "PEANUT Remove Object", "Geometry": [200, 200, 460, 210]},
        ui.VGroup(
            [
                ui.Label({"Text": "What should disappear from the clip under the playhead?"}),
                ui.LineEdit({"ID": "Prompt", "PlaceholderText": "the man in the red jacket"}),
                ui.HGroup(
                    [
                        ui.LineEdit({"ID": "Mask", "PlaceholderText": "or a mask image / folder / video (optional)"}),
                        ui.Button({"ID": "Browse", "Text": "Browse", "Weight": 0}),
                    ]
                ),
                ui.HGroup(
                    [
                        ui.LineEdit(
                            {
                                "ID": "Box",
                                "PlaceholderText": "or a box F:X,Y,W,H (source frame, pixels; several: separate with ;)",
                            }
                        ),
                        ui.CheckBox({"ID": "Approximate", "Text": "Approximate", "Weight": 0}),
                        ui.CheckBox({"ID": "IncludeEffects", "Text": "Shadow too", "Weight": 0}),
                    ]
                ),
                ui.HGroup(
                    [
                        ui.Label({"Text": "Quality", "Weight": 0}),
                        ui.ComboBox({"ID": "Preset"}),
                    ]
                ),
                ui.Label({"ID": "Status", "Text": "Ready.", "WordWrap": True}),
                ui.HGroup(
                    [
                        ui.Button({"ID": "Run", "Text": "Remove"}),
                        ui.Button({"ID": "Cancel", "Text": "Close"}),
                    ]
                ),
            ]
        ),
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
        poll()
        if state["thread"] is not None:
            return
        try:
            plan, project, timeline = pr.plan_current_clip(
                resolve, items["Prompt"].Text, items["Mask"].Text, items["Box"].Text.strip()
            )
        except pr.ResolveScriptError as exc:
            set_status(str(exc))
            return
        state.update(plan=(plan, project, timeline), result=None, error=None)
        state["cancel"].clear()
        options = {"preset": items["Preset"].CurrentText}
        if items["IncludeEffects"].Checked:
            options["include_effects"] = True
        request = pr.JobRequest(
            plan.source_path,
            plan.start,
            plan.end,
            plan.prompt,
            plan.mask_path,
            plan.output_path,
            plan.matte_path,
            options,
            box=items["Box"].Text.strip(),
            approximate=bool(items["Approximate"].Checked),
        )

        def progress(stage, done, total):
            state["progress"] = f"{stage}: {done}/{total} frames" if total else stage

        def work():
            try:
                os.makedirs(os.path.dirname(plan.output_path), exist_ok=True)
                state["result"] = pr.default_transport().run(request, progress, state["cancel"].is_set)
            except Exception as exc:  # shown in the dialog, never a traceback in Resolve's console only
                state["error"] = str(exc)

        items["Run"].Enabled = False
        items["Cancel"].Text = "Cancel"
        set_status(f"Cleaning '{plan.clip_name}' (frames {plan.start}-{plan.end - 1})...")
        state["thread"] = threading.Thread(target=work, name="peanut-job", daemon=True)
        state["thread"].start()
        timer.Start()

    def poll(event=None):
        """Place a finished job (UI thread). Returns True when it just ended.

        Called by the timer under whichever event name Resolve delivers it
        (not documented), and by every button, so a timer that never fires
        only delays placing until the next click.
        """
        thread = state["thread"]
        if thread is None:
            return False
        if thread.is_alive():
            set_status(state["progress"] or "queued...")
            return False
        timer.Stop()
        state["thread"] = None  # first: a second timer route arriving now finds nothing to place
        items["Run"].Enabled = True
        items["Cancel"].Text = "Close"
        if state["error"]:
            set_status(state["error"])
            return True
        plan, project, timeline = state["plan"]
        try:
            placed = pr.place_result(resolve, project, timeline, plan, state["result"])
            done = f"Done: '{placed.GetName()}' placed above the clip; matte in the PEANUT bin."
            # The job's warnings (words it ignored, frames to check) are part of the result.
            set_status(" ".join([done] + [f"Warning: {w}" for w in state["result"].warnings]))
        except Exception as exc:  # ResolveScriptError, or anything Resolve raised: the dialog says it
            set_status(str(exc))
        return True

    def on_cancel(event):
        if poll():
            return  # the result (or its error) is on screen; the next Close closes
        if state["thread"] is not None:
            state["cancel"].set()
            set_status("Cancelling...")
            return
        dispatcher.ExitLoop()

    timer = ui.Timer({"ID": "PeanutTick", "Interval": 250})
    # Scripts in the wild receive a UI timer's Timeout as disp.On.Timeout or
    # win.On.<ID>.Timeout; this script used disp.On.<ID>.Timeout. Listen on all.
    dispatcher.On.Timeout = poll
    dispatcher.On.PeanutTick.Timeout = poll
    window.On.PeanutTick.Timeout = poll
    window.On.Browse.Clicked = on_browse
    window.On.Run.Clicked = on_run
    window.On.Cancel.Clicked = on_cancel
    window.On.PeanutWin.Close = on_cancel
    window.Show()
    dispatcher.RunLoop()
    window.Hide()


if __name__ == "__main__" or "resolve" in globals():
    _resolve = globals().get("resolve") or bmd.scriptapp("Resolve")  # noqa: F821 (Resolve's globals)
    main(_resolve, globals().get("fusion") or _resolve.Fusion(), bmd)  # noqa: F821
